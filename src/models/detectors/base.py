"""The detector family's shared pieces: the registry, the wrapper every entry returns, the
image-level score, and local encoder-weight loading.

Every registered builder takes ``num_classes`` plus its own keyword arguments and returns a
``SegmentationDetector``; ``create_detector`` records the full call in ``model.config`` so a
checkpoint can rebuild the same network (see ``checkpoint.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import Registry

logger = logging.getLogger(__name__)

DETECTORS = Registry("detector")

# ImageNet statistics: every backbone in this family was designed (and, when weights are
# given, pre-trained) on inputs normalised this way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Target value of pixels that only exist because of crop padding; the pixel losses skip them.
IGNORE_INDEX = -100

# Set while a checkpoint rebuilds a detector: its weights are about to be overwritten, so the
# "random initialisation" warning would be false.
_weights_follow: contextvars.ContextVar[bool] = contextvars.ContextVar("_weights_follow", default=False)


class DetectorOutputs(NamedTuple):
    """What a detector computes for a batch, before any loss.

    pixel_logits: (B, num_classes, H, W) at the input size (class 0 = untouched).
    image_logits: None for pure segmentation networks; otherwise the raw output of the model's
        own image head, (B, 1) (one "contains an edit" logit, trained with BCE) or
        (B, num_classes) (class logits, trained with cross-entropy; class 0 = authentic).
    """

    pixel_logits: torch.Tensor
    image_logits: torch.Tensor | None = None


def edited_logit(image_logits: torch.Tensor) -> torch.Tensor:
    """(B, 1) or (B, C) image-head output -> (B,) logit of "the image contains an edit".

    For class logits this is log(sum_k>0 exp l_k) - l_0, so its sigmoid is 1 - softmax(l)[0].
    """
    if image_logits.ndim != 2:
        raise ValueError(f"expected image logits of shape (B, K), got {tuple(image_logits.shape)}")
    if image_logits.shape[1] == 1:
        return image_logits[:, 0]
    return torch.logsumexp(image_logits[:, 1:], dim=1) - image_logits[:, 0]


def pixel_loss(pixel_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy, ignoring ``IGNORE_INDEX`` pixels (crop padding).

    With a single-logit binary head (background logit fixed at 0) this equals binary
    cross-entropy on the edited logit. Returns 0 (with a graph) when every pixel is ignored.
    """
    # sum / count instead of reduction="mean": no NaN for an all-ignored batch, no host sync.
    total = F.cross_entropy(pixel_logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp(min=1)


def image_loss(image_logits: torch.Tensor, image_label: torch.Tensor) -> torch.Tensor:
    """BCE for a (B, 1) head against ``image_label > 0``; cross-entropy for a (B, C) head
    against ``image_label`` (0 = authentic, k = dominant edit class of the image or crop)."""
    if image_logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(image_logits[:, 0].float(), (image_label > 0).float())
    return F.cross_entropy(image_logits.float(), image_label)


class SegmentationDetector(nn.Module):
    """A segmentation network that maps RGB images to per-pixel class logits.

    ``forward(x)``: ``x`` float32 (B, 3, H, W) with values in [0, 1] (NOT normalised; the detector
    applies its mean/std itself, ImageNet statistics unless the entry says otherwise). Returns
    logits float32 (B, num_classes, H, W) at the input size. Class 0 is background (untouched
    pixels); class k > 0 is "edited" (binary task) or "edited by generator k" (semantic task).

    Inputs whose sides are not multiples of ``input_divisor`` (the network's output stride) are
    padded at the bottom/right with the normalised value 0 (the mean colour) and the logits are
    cropped back, so any image size is accepted.

    ``single_logit``: a binary (2-class) detector whose network emits ONE channel, the edited
    logit; the wrapper prepends a constant 0 background logit, so softmax gives sigmoid(edited)
    and cross-entropy equals the papers' binary cross-entropy.

    The training objective is ``loss(forward_outputs(x), target, image_label)``: pixel
    cross-entropy here; entries with an image head or extra terms override it, so one trainer
    serves every entry.

    Attributes:
        network: the wrapped module, normalised (B, 3, H', W') -> logits (B, C or 1, h, w), or a
            tuple (pixel logits, image logits) for entries with an image head.
        num_classes: C.
        config: everything needed to rebuild the detector with ``create_detector(**config)``
            (``name``, ``num_classes`` and the builder's keyword arguments); set by
            ``create_detector``.
        input_divisor: the multiple the network needs the input sides to be.
        pixel_level: True when the pixel logits localise (False for image-level classifiers,
            whose logits are constant over space).
        has_image_head: True when the model has its own image-level output (see
            ``ImageHeadDetector``); otherwise the image score is ``image_scores(logits)``.
        train_augmentation: augmentation defaults the entry's paper trained with (filled into
            the trainer's settings where the caller leaves a field unset); empty here.
    """

    pixel_level = True
    has_image_head = False
    train_augmentation: dict[str, Any] = {}

    def __init__(
        self,
        network: nn.Module,
        num_classes: int,
        *,
        input_divisor: int = 32,
        config: dict | None = None,
        single_logit: bool = False,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + at least one edit class), got {num_classes}")
        if single_logit and num_classes != 2:
            raise ValueError(f"single_logit is for the binary task (num_classes=2), got num_classes={num_classes}")
        self.network = network
        self.num_classes = int(num_classes)
        self.input_divisor = int(input_divisor)
        self.single_logit = bool(single_logit)
        self.config: dict[str, Any] = dict(config or {})
        # Non-persistent: the normalisation is part of the architecture, not of the weights.
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        x = (x - self.mean) / self.std
        d = self.input_divisor
        pad_h, pad_w = (-x.shape[-2]) % d, (-x.shape[-1]) % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def _finish(self, logits: torch.Tensor, padded_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        if logits.shape[-2:] != padded_size:
            logits = F.interpolate(logits, size=padded_size, mode="bilinear", align_corners=False)
        if self.single_logit:
            logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], dim=1)
        return logits[..., : size[0], : size[1]]

    def _compute(self, x: torch.Tensor) -> DetectorOutputs:
        size = (x.shape[-2], x.shape[-1])
        x = self._prepare(x)
        out = self.network(x)
        pixel, image = (out if isinstance(out, tuple) else (out, None))
        return DetectorOutputs(self._finish(pixel, (x.shape[-2], x.shape[-1]), size), image)

    def forward(self, x: torch.Tensor, return_outputs: bool = False) -> torch.Tensor | DetectorOutputs:
        """Pixel logits (B, C, H, W); with ``return_outputs`` the full ``DetectorOutputs``
        (going through ``__call__`` either way, so hooks and DistributedDataParallel see it)."""
        outputs = self._compute(x)
        return outputs if return_outputs else outputs.pixel_logits

    def forward_outputs(self, x: torch.Tensor) -> DetectorOutputs:
        """Pixel logits (B, C, H, W) and, for entries with an image head, its raw logits."""
        return self(x, return_outputs=True)

    def loss(
        self, outputs: DetectorOutputs, target: torch.Tensor, image_label: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training objective for one batch.

        Args:
            outputs: ``forward_outputs(x)``.
            target: (B, H, W) int64 class indices, ``IGNORE_INDEX`` where there is no label.
            image_label: (B,) int64, 0 = no edited pixel, else the image's dominant edit class.
        Returns:
            (total loss, {term name: detached value}).
        """
        pixel = pixel_loss(outputs.pixel_logits, target)
        return pixel, {"pixel": pixel.detach()}

    @staticmethod
    def image_scores(logits: torch.Tensor) -> torch.Tensor:
        """Image-level "contains an edit" score from pixel logits, the project's definition for
        detectors without their own image head.

        score = max over pixels of (1 - softmax probability of background), i.e. the probability
        of the most confidently edited pixel. For the binary task this is the max edited-class
        probability; for the semantic task it pools all generator classes. (``predict`` uses the
        model's own head instead where it has one.)

        Args:
            logits: (B, C, H, W) raw logits, class 0 = background.
        Returns:
            (B,) tensor with values in [0, 1], same dtype/device as ``logits``.
        """
        if logits.ndim != 4:
            raise ValueError(f"expected logits of shape (B, C, H, W), got {tuple(logits.shape)}")
        edited = 1.0 - logits.softmax(dim=1)[:, 0]
        return edited.flatten(1).amax(dim=1)


class ImageHeadDetector(SegmentationDetector):
    """A detector with its own image-level head (NFA-ViT's classification head, MaskCLIP's
    prompt similarity, the image classifiers).

    The network returns (pixel logits, image logits (B, 1) or (B, num_classes)). The objective
    adds the image loss (``image_loss``) to the pixel loss with weight ``image_loss_weight``.
    """

    has_image_head = True
    image_loss_weight = 1.0

    def forward_with_image(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixel logits (B, C, H, W), image logit (B,)): the second is the raw logit of "the
        image contains an edit" (``torch.sigmoid`` of it is the model's image score)."""
        outputs = self.forward_outputs(x)
        return outputs.pixel_logits, edited_logit(outputs.image_logits)

    def loss(self, outputs, target, image_label):
        total, parts = super().loss(outputs, target, image_label)
        image = image_loss(outputs.image_logits, image_label)
        parts["image"] = image.detach()
        return total + self.image_loss_weight * image, parts


class ImageClassifierDetector(ImageHeadDetector):
    """An image-level classifier behind the detector interface (CNNSpot, UniversalFakeDet).

    The network maps normalised images to image logits (B, 1) (binary: one "fake" logit, the
    papers' BCE) or (B, num_classes). ``forward`` returns them constant over space, (B, C, H, W),
    so shapes stay uniform: for a one-logit head the pixel logits are (0, l), whose max-pixel
    ``image_scores`` equals sigmoid(l), the model's own score. ``pixel_level`` is False: such a
    model says nothing about where the edit is, and only image metrics should be reported.
    The objective is the image loss alone.
    """

    pixel_level = False

    def _compute(self, x: torch.Tensor) -> DetectorOutputs:
        height, width = x.shape[-2:]
        image = self.network(self._prepare(x))
        class_logits = image if image.shape[1] == self.num_classes else torch.cat([torch.zeros_like(image), image], 1)
        pixel = class_logits[:, :, None, None].expand(-1, -1, height, width)
        return DetectorOutputs(pixel, image)

    def loss(self, outputs, target, image_label):
        image = image_loss(outputs.image_logits, image_label)
        return image, {"image": image.detach()}


def create_detector(name: str, num_classes: int, **kwargs: Any) -> SegmentationDetector:
    """Build the registered detector ``name`` with ``num_classes`` output classes.

    Keyword arguments go to the entry's builder (see each architecture's module). The returned
    detector's ``config`` is ``{"name": name, "num_classes": num_classes, **kwargs}`` (path
    objects recorded as strings), plus whatever the builder resolved that a rebuild needs and
    the caller did not pass (``model.resolved_config``, e.g. the architecture of a CLIP model
    loaded from a folder, so a checkpoint rebuilds without that folder).

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    builder = DETECTORS.get(name)
    model = builder(num_classes=num_classes, **kwargs)
    if not isinstance(model, SegmentationDetector):
        raise TypeError(f"detector builder {name!r} returned {type(model).__name__}, not SegmentationDetector")
    # Paths become strings so the config stays JSON (it is written next to every checkpoint).
    recorded = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in kwargs.items()}
    resolved = {k: v for k, v in getattr(model, "resolved_config", {}).items() if recorded.get(k) is None}
    model.config = {"name": name, "num_classes": int(num_classes), **recorded, **resolved}
    return model


def list_detectors() -> list[str]:
    """Sorted names of the registered detectors."""
    return DETECTORS.names()


def detector_tasks(name: str) -> tuple[str, ...]:
    """The tasks entry ``name`` can be built for: its registry ``tasks`` meta, default both
    ("binary", "semantic"). Raises ``UnknownNameError`` for an unknown name."""
    return tuple(DETECTORS.meta(name).get("tasks", ("binary", "semantic")))


def weights_follow_active() -> bool:
    """True inside ``weights_follow()``: builders must not read pretrained files (a state dict
    with every weight is about to be loaded, and those files may no longer exist)."""
    return _weights_follow.get()


@contextlib.contextmanager
def weights_follow() -> Iterator[None]:
    """Within this block, builders skip the random-initialisation warning (a state dict follows)."""
    token = _weights_follow.set(True)
    try:
        yield
    finally:
        _weights_follow.reset(token)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a local state dict: ``*.safetensors`` via safetensors, anything else via
    ``torch.load(weights_only=True)`` (no arbitrary pickle execution).

    A file holding ``{"state_dict": {...}}`` or ``{"model": {...}}`` (common training-checkpoint
    layouts) is unwrapped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not hold a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def load_encoder_weights(
    encoder: nn.Module, weights: str | Path | Mapping[str, torch.Tensor] | None, *, detector: str,
    smp_encoder: str | None = None,
) -> None:
    """Load ``weights`` (a local file path, see ``read_weights_file``, or a state dict already
    read) into ``encoder``.

    With ``smp_encoder`` (the smp encoder's name), ``weights`` may also be one of smp's weight
    names for it (``"imagenet"``, ...), read from the Hugging Face cache (``pretrained.py``).

    ``None`` leaves the encoder randomly initialised and logs a warning: nothing is ever
    downloaded. Inside ``weights_follow()`` nothing is read (a full state dict follows). Keys are matched after stripping a leading ``module.`` (DataParallel) or
    ``encoder.`` (a state dict of a whole smp model's encoder). Keys in the file that the encoder
    does not have (a classifier head, say) are ignored and logged.

    Raises:
        ValueError: the file lacks some of the encoder's keys, or a shape differs.
    """
    if _weights_follow.get():
        return
    if weights is None:
        if not _weights_follow.get():
            logger.warning(
                "detector %r: encoder_weights=None, the encoder is randomly initialised "
                "(pass a local weights file to start from pre-trained features)",
                detector,
            )
        return
    if smp_encoder is not None and not isinstance(weights, Mapping):
        from .pretrained import resolve_encoder_weights

        weights = resolve_encoder_weights(smp_encoder, weights)
    source = "the given state dict" if isinstance(weights, Mapping) else str(weights)
    state = dict(weights) if isinstance(weights, Mapping) else read_weights_file(weights)
    expected = encoder.state_dict()
    for prefix in ("module.", "encoder."):
        if not any(k in expected for k in state) and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(
            f"{source} lacks {len(missing)} of the encoder's {len(expected)} keys "
            f"(first: {missing[:5]}); is it a state dict for this encoder?"
        )
    mismatched = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if state[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"{source}: shape mismatch (key, file, encoder): {mismatched[:5]}")
    unused = sorted(set(state) - set(expected))
    if unused:
        logger.info("detector %r: ignoring %d keys of %s not in the encoder (e.g. %s)", detector, len(unused), source, unused[:3])
    # smp's encoders override load_state_dict with differing signatures; strict is their default.
    encoder.load_state_dict({k: state[k] for k in expected})
    logger.info("detector %r: loaded encoder weights from %s", detector, source)
