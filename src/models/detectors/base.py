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
from typing import Any

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

# Set while a checkpoint rebuilds a detector: its weights are about to be overwritten, so the
# "random initialisation" warning would be false.
_weights_follow: contextvars.ContextVar[bool] = contextvars.ContextVar("_weights_follow", default=False)


class SegmentationDetector(nn.Module):
    """A segmentation network that maps RGB images to per-pixel class logits.

    ``forward(x)``: ``x`` float32 (B, 3, H, W) with values in [0, 1] (NOT normalised; the detector
    applies ImageNet mean/std itself). Returns logits float32 (B, num_classes, H, W) at the input
    size. Class 0 is background (untouched pixels); class k > 0 is "edited" (binary task) or
    "edited by generator k" (semantic task).

    Inputs whose sides are not multiples of ``input_divisor`` (the network's output stride) are
    padded at the bottom/right with the normalised value 0 (the ImageNet mean colour) and the
    logits are cropped back, so any image size is accepted.

    Attributes:
        network: the wrapped module, normalised (B, 3, H', W') -> logits (B, C, h, w).
        num_classes: C.
        config: everything needed to rebuild the detector with ``create_detector(**config)``
            (``name``, ``num_classes`` and the builder's keyword arguments); set by
            ``create_detector``.
        input_divisor: the multiple the network needs the input sides to be.
    """

    def __init__(self, network: nn.Module, num_classes: int, *, input_divisor: int = 32, config: dict | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + at least one edit class), got {num_classes}")
        self.network = network
        self.num_classes = int(num_classes)
        self.input_divisor = int(input_divisor)
        self.config: dict[str, Any] = dict(config or {})
        # Non-persistent: the normalisation is part of the architecture, not of the weights.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        x = (x - self.mean) / self.std
        d = self.input_divisor
        pad_h, pad_w = (-height) % d, (-width) % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        logits = self.network(x)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]

    @staticmethod
    def image_scores(logits: torch.Tensor) -> torch.Tensor:
        """Image-level "contains an edit" score, the single definition used across the project.

        score = max over pixels of (1 - softmax probability of background), i.e. the probability
        of the most confidently edited pixel. For the binary task this is the max edited-class
        probability; for the semantic task it pools all generator classes.

        Args:
            logits: (B, C, H, W) raw logits, class 0 = background.
        Returns:
            (B,) tensor with values in [0, 1], same dtype/device as ``logits``.
        """
        if logits.ndim != 4:
            raise ValueError(f"expected logits of shape (B, C, H, W), got {tuple(logits.shape)}")
        edited = 1.0 - logits.softmax(dim=1)[:, 0]
        return edited.flatten(1).amax(dim=1)


def create_detector(name: str, num_classes: int, **kwargs: Any) -> SegmentationDetector:
    """Build the registered detector ``name`` with ``num_classes`` output classes.

    Keyword arguments go to the entry's builder (see each architecture's module). The returned
    detector's ``config`` is ``{"name": name, "num_classes": num_classes, **kwargs}`` (path
    objects recorded as strings).

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    builder = DETECTORS.get(name)
    model = builder(num_classes=num_classes, **kwargs)
    if not isinstance(model, SegmentationDetector):
        raise TypeError(f"detector builder {name!r} returned {type(model).__name__}, not SegmentationDetector")
    # Paths become strings so the config stays JSON (it is written next to every checkpoint).
    recorded = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in kwargs.items()}
    model.config = {"name": name, "num_classes": int(num_classes), **recorded}
    return model


def list_detectors() -> list[str]:
    """Sorted names of the registered detectors."""
    return DETECTORS.names()


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
    encoder: nn.Module, weights: str | Path | Mapping[str, torch.Tensor] | None, *, detector: str
) -> None:
    """Load ``weights`` (a local file path, see ``read_weights_file``, or a state dict already
    read) into ``encoder``.

    ``None`` leaves the encoder randomly initialised and logs a warning: nothing is ever
    downloaded. Keys are matched after stripping a leading ``module.`` (DataParallel) or
    ``encoder.`` (a state dict of a whole smp model's encoder). Keys in the file that the encoder
    does not have (a classifier head, say) are ignored and logged.

    Raises:
        ValueError: the file lacks some of the encoder's keys, or a shape differs.
    """
    if weights is None:
        if not _weights_follow.get():
            logger.warning(
                "detector %r: encoder_weights=None, the encoder is randomly initialised "
                "(pass a local weights file to start from pre-trained features)",
                detector,
            )
        return
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
