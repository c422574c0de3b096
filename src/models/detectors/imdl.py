"""IMDL-BenCo's model zoo (Ma et al., NeurIPS 2024 D&B, "IMDL-BenCo: A Comprehensive Benchmark and
Codebase for Image Manipulation Detection & Localization") behind the detector registry as
``imdl:<model>`` entries: the baselines BR-Gen and OpenSDI report were all run with it.

How one of its models is driven (its ``training_scripts`` and ``datasets`` are the reference):

- input: ImageNet-normalised RGB (its ``Normalize`` transform), RESIZED to the model's
  ``input_size`` (its "resize" mode; the fixed-size models accept nothing else); the mask
  probability is resized back, so any image size goes in;
- ``forward(image=, mask=, edge_mask=, label=, shape=)`` returns a dict with ``backward_loss``
  (the model's OWN training loss), ``pred_mask`` (B, 1, S, S) edited probability after its sigmoid
  / softmax, and ``pred_label`` (B,) image probability or None. ``edge_mask`` is IMDL-BenCo's
  ``EdgeMaskGenerator`` band (dilation minus erosion with a cross kernel) computed here on the
  fly, as its datasets do;
- the loss needs the mask, so in training mode the adapter defers the network to ``loss`` (one
  forward per step; see ``ImdlDetector``). Crop-padding pixels (``IGNORE_INDEX``) count as
  untouched there: IMDL-BenCo's losses have no ignore label;
- binary task only: every model emits ONE edited-probability map trained with BCE-style losses
  (some with edge, dice or confidence terms). The semantic task would mean a C-way head and a
  different loss, i.e. not the published model; ``num_classes != 2`` raises.

The image score is the model's ``pred_label`` where it trains one (MVSS-Net, PSCC-Net), else the
project's definition for detectors without an image head (max over pixels, ``image_scores``).

IMDL-BenCo's package ``__init__`` imports its datasets and model zoo (not its CLI), which is what
registers the models; ``requirements-imdl.txt`` says how it is installed beside our numpy 2.

TruFor, SPAN, CAT-Net and MSCDI-Net need our glue (``imdl_glue``, built through ``GLUE_SPECS``):
TruFor's constructor needs IMDL-BenCo's ``trufor.yaml``, not in the PyPI package (its values are
shipped as ``imdl_glue.TRUFOR_CONFIG``), and runs its phase 2 (localisation); SPAN's last layer,
``Last_Layer_0725``, creates new random Conv2d layers on every forward call (replaced by one
registered head); CAT-Net needs a JPEG's quantised DCT coefficients and quantisation table, which
our decoded-RGB samples do not carry (computed from the pixels as an encoder would, ``jpeg_dct``,
quality 100 by default as CAT-Net's code does for non-JPEG inputs), and its wrapper calls
``.cuda()``; MSCDI-Net runs as is (a warning silenced, random init without a file).

The whole ``{srm,bayar,dct,fft,sobel}_{resnet,segformer,swin,unet,vit,vit16}`` family is
registered (``FAMILY_BACKBONES``), at IMDL-BenCo's 512 px by default and at any multiple of the
backbone's side otherwise (the ViT / Swin, written for 512 px, are resized by the adapter:
``_resize_family_backbone``). Every backbone's pretrained weights are a LOCAL file: timm's through
``_timm_weights_from``; the U-Net's (its constructor runs ``torch.hub.load('milesial/Pytorch-UNet',
'unet_carvana', pretrained=True, scale=1)``, i.e. would fetch and execute a GitHub repository)
through ``_pytorch_unet_from``: that repository's network built here (``pytorch_unet.py``, same
parameter names) or from a local clone, with its Carvana checkpoint read from a file.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import DETECTORS, IGNORE_INDEX, DetectorOutputs, SegmentationDetector, weights_follow_active

logger = logging.getLogger(__name__)

# Logit of a probability clamped away from 0 and 1 (IMDL-BenCo's heads output probabilities).
_EPS = 1e-6


@dataclass(frozen=True)
class ImdlSpec:
    """How one IMDL-BenCo model is built.

    imdl_name: its name in ``IMDLBenCo.registry.MODELS``.
    paper: the publication.
    default_size: the input side its paper / IMDL-BenCo trains at.
    size_args: constructor arguments that receive ``input_size`` (empty: the size is fixed).
    weight_args: constructor arguments that are LOCAL pretrained files (None = not given).
    required_weights: those the paper's model cannot do without; None is an error unless
        ``random_init=True`` says random weights are meant.
    image_head: the model trains its own ``pred_label``.
    output_size: the side its ``pred_mask`` comes out at whatever the input (None = the input
        side); its loss's mask is given at that side.
    defaults: constructor arguments set here (documented per entry).
    """

    imdl_name: str
    paper: str
    default_size: int
    size_args: tuple[str, ...] = ()
    weight_args: tuple[str, ...] = ()
    required_weights: tuple[str, ...] = ()
    image_head: bool = False
    output_size: int | None = None
    defaults: dict[str, Any] = field(default_factory=dict)


SPECS: dict[str, ImdlSpec] = {
    "mantranet": ImdlSpec("MantraNet", "ManTra-Net, Wu et al., CVPR 2019", 256),
    "mvssnet": ImdlSpec("MVSSNet", "MVSS-Net, Chen et al., ICCV 2021", 512, image_head=True),
    "pscc_net": ImdlSpec("PSCC_Net", "PSCC-Net, Liu et al., TCSVT 2022", 256, size_args=("input_size",),
                         weight_args=("pretrain_path",), image_head=True),
    "object_former": ImdlSpec("ObjectFormer", "ObjectFormer, Wang et al., CVPR 2022", 224, size_args=("input_size",),
                              weight_args=("init_weight_path",)),
    "iml_vit": ImdlSpec("IML_ViT", "IML-ViT, Ma et al., arXiv 2307.14863", 1024, size_args=("input_size",),
                        weight_args=("vit_pretrain_path",)),
    "sparse_vit": ImdlSpec("SparseViT", "SparseViT, Su et al., AAAI 2025", 512, size_args=("img_size",),
                           weight_args=("pretrained_path",)),
    # Mesorch's encoders (ConvNeXt, MiT) take any multiple of 32; its head upsamples to a fixed 512.
    "mesorch": ImdlSpec("Mesorch", "Mesorch, Zhu et al., AAAI 2025", 512, weight_args=("seg_pretrain_path",),
                        output_size=512),
}


# IMDL-BenCo's feature x backbone family (its ``modules/backbones``): a fixed or learned
# low-level feature extractor (SRM, Bayar, DCT, FFT, Sobel), concatenated to the RGB input, into a
# generic backbone with a plain transposed-convolution decoder and BCE loss. ``timm`` is the timm
# architecture each backbone loads ImageNet weights for (its constructor always calls
# ``timm.create_model(arch, pretrained=True)``); the U-Net's comes from Pytorch-UNet's Carvana
# release (its constructor calls ``torch.hub.load('milesial/Pytorch-UNet', 'unet_carvana')``, see
# ``_pytorch_unet_from``). IMDL-BenCo trains them all at 512 px, the default here. ``multiple``:
# the input side must be a multiple of it (the decoders' upsampling factors); the adapter makes
# the ViT / Swin backbones, written for 512 px, run at any such side (``_resize_family_backbone``).
FAMILY_FEATURES = ("srm", "bayar", "dct", "fft", "sobel")
FAMILY_SIZE = 512
FAMILY_BACKBONES = {
    # backbone: (timm architecture or None, side multiple, paper / source of the backbone)
    "resnet": ("resnet152", 16, "ResNet-152 (first three stages), He et al., CVPR 2016"),
    "segformer": (None, 32, "SegFormer MiT encoder, Xie et al., NeurIPS 2021"),
    "swin": ("swin_base_patch4_window7_224", 32, "Swin-B, Liu et al., ICCV 2021"),
    "vit": ("vit_base_patch16_224", 16, "ViT-B/16 (8 blocks, feature tokens appended), Dosovitskiy et al., ICLR 2021"),
    "vit16": ("vit_base_patch16_224", 16, "ViT-B/16 (12 blocks, features as input channels), Dosovitskiy et al., ICLR 2021"),
    "unet": (None, 16, "U-Net (milesial's Pytorch-UNet, Carvana weights), Ronneberger et al., MICCAI 2015"),
}
for _feature in FAMILY_FEATURES:
    for _backbone, (_arch, _multiple, _paper) in FAMILY_BACKBONES.items():
        SPECS[f"{_feature}_{_backbone}"] = ImdlSpec(
            f"{_feature}_{_backbone}", f"IMDL-BenCo {_feature.upper()} features + {_paper}", FAMILY_SIZE,
            # The constructors take no size: ``_build_network`` consumes it (``_resize_family_backbone``).
            size_args=("input_size",),
            # SegFormer's constructor torch.loads its MiT file unconditionally; the timm backbones
            # and the U-Net take theirs through ``backbone_weights`` (``_timm_weights_from``,
            # ``_pytorch_unet_from``).
            weight_args=("pretrain_pth_path",) if _backbone == "segformer" else ("backbone_weights",),
            required_weights=("pretrain_pth_path",) if _backbone == "segformer" else ("backbone_weights",),
        )


# Models whose IMDL-BenCo constructor or forward cannot be used as is; ``imdl_glue`` wraps each
# (why, per model, in its docstrings) and builds them with the arguments below.
GLUE_SPECS = {
    # Phase 2 (localisation) of TruFor's three; Noiseprint++ is frozen, so it is required.
    "trufor": ImdlSpec("Trufor", "TruFor, Guillaro et al., CVPR 2023", 512,
                       weight_args=("np_pretrain_weights", "mit_b2_pretrain_weights"),
                       required_weights=("np_pretrain_weights", "mit_b2_pretrain_weights")),
    # 224 px: IMDL-BenCo's demo_train_span.sh.
    "span": ImdlSpec("SPAN", "SPAN, Hu et al., ECCV 2020", 224, weight_args=("weight_path",),
                     required_weights=("weight_path",)),
    "cat_net": ImdlSpec("Cat_Net", "CAT-Net, Kwon et al., IJCV 2022", 512, size_args=("input_size",),
                        weight_args=("pretrained_rgb", "pretrained_dct"),
                        required_weights=("pretrained_rgb", "pretrained_dct")),
    "mscdi_net": ImdlSpec("MSCDI_Net", "MSCDI-Net (csust-sonie/MSCDI-Net)", 512, size_args=("input_size",),
                          weight_args=("backbone_weights_path",), required_weights=("backbone_weights_path",)),
}
SPECS.update(GLUE_SPECS)


@contextlib.contextmanager
def _timm_weights_from(arch: str, weights: str | None, key: str):
    """While an IMDL-BenCo family backbone is built, its ``timm.create_model(arch, pretrained=True)``
    reads ``weights`` (a LOCAL timm state-dict file, timm's ``pretrained_cfg_overlay={"file": ...}``)
    instead of the hub; ``weights=None`` builds the architecture randomly initialised (the caller
    has checked that random weights are meant, or that a checkpoint's state dict follows).

    Raises:
        FileNotFoundError: ``weights`` is given but is not a file.
    """
    import os

    import timm

    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"imdl:{key}: backbone_weights file not found: {weights} (a timm {arch} state dict)")
    original = timm.create_model

    def create_model(name, pretrained=False, **kwargs):
        if name != arch or not pretrained:
            return original(name, pretrained=pretrained, **kwargs)
        if weights is None:
            return original(name, pretrained=False, **kwargs)
        return original(name, pretrained=True, pretrained_cfg_overlay={"file": os.fspath(weights)}, **kwargs)

    # timm's initialisation of ViT-B / Swin-B / ResNet-152 costs seconds of CPU, spent only where
    # its values survive: IMDL-BenCo's ViT / Swin (subclasses of timm's) load the copy's state dict
    # over their own init, so theirs is skipped; inside a checkpoint reload (``weights_follow``)
    # every weight is overwritten, so every init is skipped.
    base = {"vit": timm.models.VisionTransformer, "swin": timm.models.SwinTransformer,
            "resnet": timm.models.ResNet}[arch.split("_")[0].rstrip("0123456789")]
    init_weights = base.init_weights
    follow = weights is None and weights_follow_active()

    def init_where_it_survives(model, *args, **kwargs):
        if type(model) is base and not follow:
            return init_weights(model, *args, **kwargs)
        return None

    timm.create_model, base.init_weights = create_model, init_where_it_survives
    try:
        yield
    finally:
        timm.create_model, base.init_weights = original, init_weights


def _imdl_models() -> Any:
    """IMDL-BenCo's model registry (importing the package registers its models)."""
    try:
        import IMDLBenCo  # noqa: F401  (registers the model zoo)
        from IMDLBenCo.registry import MODELS
    except ImportError as exc:
        raise ImportError(
            f"IMDL-BenCo is not installed ({exc}); install it with "
            "`pip install --no-deps -r requirements-imdl.txt` (the Makefile's venv target does)"
        ) from exc
    return MODELS


def edge_band(mask: torch.Tensor, kernel_size: int = 7) -> torch.Tensor:
    """IMDL-BenCo's ``EdgeMaskGenerator``: float (B, 1, H, W) in {0, 1}, 1 within the band where
    a cross-shaped dilation of the mask and of its complement overlap (the mask's boundary).
    Its datasets use kernel size 7 (``edge_width``)."""
    kernel = torch.zeros(1, 1, kernel_size, kernel_size, dtype=mask.dtype, device=mask.device)
    kernel[..., kernel_size // 2, :] = 1
    kernel[..., :, kernel_size // 2] = 1
    dilated = F.conv2d(mask, kernel, padding=kernel_size // 2) > 0
    dilated_complement = F.conv2d(1 - mask, kernel, padding=kernel_size // 2) > 0
    return (dilated & dilated_complement).to(mask.dtype)


class DeferredOutputs(NamedTuple):
    """What ``ImdlDetector`` returns in training mode: the normalised, resized input, run by
    ``loss`` together with the target (IMDL-BenCo models compute their loss inside forward)."""

    images: torch.Tensor
    size: tuple[int, int]


class ImdlDetector(SegmentationDetector):
    """An IMDL-BenCo model behind the detector interface (binary task, single edited logit).

    ``forward(x)``: (B, 3, H, W) in [0, 1] -> logits (B, 2, H, W) = (0, logit(pred_mask)).
    ``forward(x, return_outputs=True)`` in eval mode: ``DetectorOutputs`` with the image logit
    (B, 1) = logit(pred_label) for models with a trained label head. In TRAINING mode it returns
    ``DeferredOutputs`` and ``loss(outputs, target, image_label)`` runs the model with the mask
    and label and returns its own ``backward_loss`` (one forward per step, as the trainer calls
    exactly ``loss(model(x, return_outputs=True), ...)``).

    Attributes (beyond ``SegmentationDetector``'s): ``imdl_model`` (the wrapped IMDL-BenCo
    module, also ``network``), ``input_size`` (the side the model runs at).
    """

    def __init__(self, network: nn.Module, *, input_size: int, image_head: bool, output_size: int | None = None):
        super().__init__(network, 2, input_divisor=1, single_logit=True)
        self.input_size = int(input_size)
        self.mask_size = int(output_size or input_size)  # the side of the model's pred_mask and loss mask
        self.has_image_head = bool(image_head)

    def _resized(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        side = self.input_size
        if x.shape[-2:] != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
        return x

    def _run(self, images: torch.Tensor, mask: torch.Tensor, label: torch.Tensor) -> dict[str, Any]:
        out = self.network(image=images, mask=mask, edge_mask=edge_band(mask), label=label, shape=None)
        if not isinstance(out, dict) or "pred_mask" not in out or "backward_loss" not in out:
            raise TypeError(f"{type(self.network).__name__} did not return IMDL-BenCo's output dict")
        return out

    def _outputs(self, out: dict[str, Any], size: tuple[int, int]) -> DetectorOutputs:
        probability = out["pred_mask"].float().clamp(_EPS, 1 - _EPS)
        if probability.shape[-2:] != size:
            probability = F.interpolate(probability, size=size, mode="bilinear", align_corners=False)
        edited = torch.logit(probability)
        pixel = torch.cat([torch.zeros_like(edited), edited], dim=1)
        image = None
        if self.has_image_head:
            label = out["pred_label"].float().reshape(-1, 1).clamp(_EPS, 1 - _EPS)
            image = torch.logit(label)
        return DetectorOutputs(pixel, image)

    def forward(self, x: torch.Tensor, return_outputs: bool = False):
        size = (x.shape[-2], x.shape[-1])
        images = self._resized(x)
        if self.training and return_outputs:
            return DeferredOutputs(images, size)
        batch, side = images.shape[0], self.mask_size
        # No target at inference: the model's loss is computed on an empty mask and discarded.
        out = self._run(images, images.new_zeros(batch, 1, side, side), images.new_zeros(batch))
        outputs = self._outputs(out, size)
        return outputs if return_outputs else outputs.pixel_logits

    def loss(self, outputs, target: torch.Tensor, image_label: torch.Tensor):
        """The IMDL-BenCo model's own ``backward_loss`` on ``target`` (edited = class > 0,
        ``IGNORE_INDEX`` = untouched) and ``image_label > 0``; parts: {"imdl": value}.

        Raises:
            TypeError: ``outputs`` is not this detector's training-mode ``DeferredOutputs``.
        """
        if not isinstance(outputs, DeferredOutputs):
            raise TypeError("ImdlDetector.loss takes the DeferredOutputs of forward(x, return_outputs=True) in train mode")
        edited = ((target > 0) & (target != IGNORE_INDEX)).float()[:, None]
        mask = F.interpolate(edited, size=(self.mask_size,) * 2, mode="nearest")
        out = self._run(outputs.images, mask, (image_label > 0).float())
        loss = out["backward_loss"]
        return loss, {"imdl": loss.detach()}


def _quiet(fn, *args, **kwargs):
    """IMDL-BenCo's constructors print progress; keep it out of our logs' stdout."""
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        result = fn(*args, **kwargs)
    if captured.getvalue().strip():
        logger.debug("IMDL-BenCo: %s", captured.getvalue().strip())
    return result


def build_imdl(key: str, num_classes: int, input_size: int | None = None, random_init: bool = False,
               **model_kwargs: Any) -> ImdlDetector:
    """Build the IMDL-BenCo model ``SPECS[key]`` behind the detector interface.

    Args:
        key: an entry of ``SPECS`` (registered as ``imdl:<key>``).
        num_classes: must be 2 (binary task, see the module docstring).
        input_size: the side the model runs at; None = the paper's (``default_size``). Models
            without a size argument (ManTra-Net, MVSS-Net, Mesorch: any multiple of 32, its
            mask always comes out at 512) still resize to it.
        random_init: True says that missing ``required_weights`` are meant (tests, ablations).
        model_kwargs: the IMDL-BenCo constructor's own arguments (weight files as LOCAL paths).
    Raises:
        ValueError: ``num_classes != 2``; a required weights file missing without ``random_init``;
            a size argument passed in ``model_kwargs``.
        ImportError: IMDL-BenCo is not installed.
    """
    spec = SPECS[key]
    if num_classes != 2:
        raise ValueError(f"imdl:{key} is a binary detector (one edited-probability map); got num_classes={num_classes}")
    size = int(input_size or spec.default_size)
    clash = set(spec.size_args) & set(model_kwargs)
    if clash:
        raise ValueError(f"imdl:{key}: pass the size as input_size, not {sorted(clash)}")
    kwargs = {**spec.defaults, **model_kwargs, **{arg: size for arg in spec.size_args}}
    if key == "object_former":
        # Its prototype count must equal the token count of two stacked 16 px patch grids
        # (392 = 2 * (224 / 16)^2 in the paper's configuration).
        kwargs.setdefault("num_prototypes", 2 * (size // kwargs.get("patch_size", 16)) ** 2)
    follow = weights_follow_active()
    missing = [arg for arg in spec.required_weights if not kwargs.get(arg)]
    if missing and not (random_init or follow):
        raise ValueError(f"imdl:{key} needs pretrained files {missing} (local paths); "
                         "pass random_init=True if random weights are meant")
    if follow:  # a checkpoint's state dict follows: do not read (possibly moved) files
        kwargs.update({arg: None for arg in spec.weight_args})
    if key == "mvssnet":  # checkpoint reloads too: its constructor reads the file unconditionally
        _require_torch_hub_file(MVSS_RESNET50_FILE, key)
    if key == "pscc_net" and not kwargs.get("pretrain_path"):
        kwargs["pretrain_path"] = ""  # its HRNet init tests os.path.isfile(path): "" = random init
    network = _build_network(key, spec, kwargs)
    return ImdlDetector(network, input_size=size, image_head=spec.image_head, output_size=spec.output_size)


def _build_network(key: str, spec: ImdlSpec, kwargs: dict[str, Any]) -> nn.Module:
    """Call IMDL-BenCo's constructor; the family's backbone weights come from local files only."""
    build = _imdl_models().get(spec.imdl_name)
    if key in GLUE_SPECS:
        from . import imdl_glue

        return _quiet(imdl_glue.BUILDERS[key], **kwargs)
    backbone = key.split("_", 1)[1] if key.split("_", 1)[0] in FAMILY_FEATURES else None
    if backbone is None:
        return _quiet(build, **kwargs)
    size = int(kwargs["input_size"])
    multiple = FAMILY_BACKBONES[backbone][1]
    if size % multiple:
        raise ValueError(f"imdl:{key}: input_size must be a multiple of {multiple}, got {size}")
    if kwargs.get("unet_repo") and backbone != "unet":
        raise ValueError(f"imdl:{key}: unet_repo is for the *_unet entries (a local Pytorch-UNet clone)")
    arch = FAMILY_BACKBONES[backbone][0]
    if backbone == "segformer":  # strict=False load of a MiT state dict; an empty one = random
        path = kwargs.get("pretrain_pth_path")
        if not path:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                empty = f"{folder}/no_weights.pth"
                torch.save({}, empty)
                return _own_memory(_quiet(build, pretrain_pth_path=empty))
        return _own_memory(_quiet(build, pretrain_pth_path=path))
    weights = kwargs.get("backbone_weights")
    if backbone == "unet":
        with _pytorch_unet_from(weights, kwargs.get("unet_repo"), key):
            return _own_memory(_quiet(build))
    with _timm_weights_from(arch, weights, key):
        network = _own_memory(_quiet(build))
    return _resize_family_backbone(network, backbone, size)


# What IMDL-BenCo's U-Net constructor asks torch.hub for (``modules/backbones/unet.py``).
PYTORCH_UNET_HUB = ("milesial/Pytorch-UNet", "unet_carvana")


@contextlib.contextmanager
def _pytorch_unet_from(weights: str | None, repo: str | None, key: str):
    """While an IMDL-BenCo ``*_unet`` is built, its ``torch.hub.load('milesial/Pytorch-UNet',
    'unet_carvana', pretrained=True, scale=1)`` (which would fetch and execute that GitHub
    repository, then download its Carvana weights) returns the same network built locally:
    ``pytorch_unet.unet_carvana`` (that repository's architecture and parameter names, written
    here), or, with ``repo`` (a local clone, e.g. torch.hub's cache folder
    ``<hub dir>/milesial_Pytorch-UNet_master``), ``torch.hub.load(repo, 'unet_carvana',
    source='local', pretrained=False)``. Either way the weights are the LOCAL checkpoint file
    ``weights`` (its ``train.py`` format; scale 1.0 is ``pytorch_unet.CARVANA_SCALE1_FILE``); None
    = random (the caller has checked that random weights are meant, or that a state dict follows).

    Raises:
        FileNotFoundError: ``weights`` or ``repo`` is given but missing.
        RuntimeError: the constructor asks torch.hub for anything else (nothing is fetched).
    """
    import os

    from .pytorch_unet import read_carvana_checkpoint, unet_carvana

    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"imdl:{key}: backbone_weights file not found: {weights} (a Pytorch-UNet Carvana checkpoint)")
    if repo is not None and not os.path.isfile(os.path.join(repo, "hubconf.py")):
        raise FileNotFoundError(f"imdl:{key}: unet_repo {repo} has no hubconf.py (a local clone of milesial/Pytorch-UNet)")
    original = torch.hub.load

    def load(repo_or_dir, model, *args, **kwargs):
        if (repo_or_dir, model) != PYTORCH_UNET_HUB or kwargs.get("source", "github") != "github":
            raise RuntimeError(f"imdl:{key}: unexpected torch.hub.load({repo_or_dir!r}, {model!r}) while building; "
                               "nothing is fetched from the network")
        if repo is None:
            return unet_carvana(weights)
        network = original(repo, model, source="local", pretrained=False)
        if weights is not None:
            network.load_state_dict(read_carvana_checkpoint(weights))
        return network

    torch.hub.load = load
    try:
        yield
    finally:
        torch.hub.load = original


def _resize_family_backbone(network: nn.Module, backbone: str, size: int) -> nn.Module:
    """Make a family ViT / Swin, written for 512 px, run at ``size`` (a no-op at 512, where the
    network is IMDL-BenCo's unchanged). The ResNet, SegFormer and U-Net take any multiple of their
    ``FAMILY_BACKBONES`` side already.

    - Swin: timm's ``set_input_size(img_size, window_size=7)``, i.e. the paper's 7 px windows,
      shrunk by timm to a stage's grid where the grid is smaller (its relative-position tables
      resampled), and the attention masks recomputed.
    - ViT: IMDL-BenCo's position table has 1024 entries per token group (the 32 x 32 grid of
      512 px; two groups when the feature tokens are appended) after the class token; each group
      is resampled as a 32 x 32 grid to (size / 16)^2 with timm's ``resample_abs_pos_embed`` (how
      timm fits a pre-trained table to a new grid), and the forward that reads the token grid back
      (IMDL-BenCo's slices ``[1:1025]`` and ``[1025:]``) is replaced by ``_vit_forward_any_size``.
    """
    if size == FAMILY_SIZE or backbone not in ("swin", "vit", "vit16"):
        return network
    if backbone == "swin":
        network.set_input_size(img_size=(size, size), window_size=7)
        return network
    import types

    from timm.layers import resample_abs_pos_embed

    grid = FAMILY_SIZE // 16
    table = network.pos_embed.data
    resampled = [resample_abs_pos_embed(part, new_size=[size // 16] * 2, old_size=[grid, grid], num_prefix_tokens=0)
                 for part in table[:, 1:].split(grid**2, dim=1)]
    network.pos_embed = nn.Parameter(torch.cat([table[:, :1], *resampled], dim=1))
    network.forward = types.MethodType(_vit_forward_any_size, network)
    return network


def _vit_forward_any_size(self, image: torch.Tensor, mask: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """IMDL-BenCo's ViT / ViT16 family forward (``modules/backbones/vit.py`` / ``vit16.py``) with
    the token grid read at the input's size instead of the fixed 32 x 32 of 512 px; identical to
    theirs at 512 px (tested). Bound to the network by ``_resize_family_backbone``."""
    if self.input_head is not None and hasattr(self, "feature_patch_embed"):  # vit: feature tokens appended
        feature = self.feature_patch_embed(self.input_head(image)).flatten(2).transpose(1, 2)
        x = torch.cat([self.patch_embed(image), feature], dim=1)
    elif self.input_head is not None:  # vit16: features as extra input channels
        x = self.patch_embed(torch.cat([image, self.input_head(image)], dim=1))
    else:
        x = self.patch_embed(image)
    tokens = self.norm(self.blocks(self._pos_embed(x)))[:, 1:].transpose(1, 2)  # (B, 768, groups * h * w)
    h, w = image.shape[-2] // 16, image.shape[-1] // 16
    grid = sum(tokens.split(h * w, dim=2)).reshape(image.shape[0], -1, h, w)
    logits = self.deconv_model(grid)
    loss = self.loss_fun(logits, mask)
    probability = torch.sigmoid(logits)
    return {"backward_loss": loss, "pred_mask": probability, "pred_label": None,
            "visual_loss": {"predict_loss": loss}, "visual_image": {"pred_mask": probability}}


def _own_memory(network: nn.Module) -> nn.Module:
    """The Sobel extractor's fixed kernels are ``expand``-ed views (stride 0): give every such
    tensor its own memory so a checkpoint's state dict can be copied into it."""
    for tensor in [*network.parameters(), *network.buffers()]:
        if 0 in tensor.stride():
            tensor.data = tensor.data.clone()
    return network


# MVSS-Net's constructor always loads torchvision's ImageNet ResNet-50 through torch.hub's cache
# (``torch.utils.model_zoo.load_url``), for both of its branches.
MVSS_RESNET50_FILE = "resnet50-19c8e357.pth"


def _require_torch_hub_file(name: str, key: str) -> None:
    """Nothing downloads behind the user's back: the file must already be in torch.hub's cache."""
    import os

    path = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"imdl:{key} loads {name} from torch.hub's cache and it is not there: {path} "
                                "(put torchvision's ImageNet ResNet-50 weights there; TORCH_HOME moves the cache)")


def _register(key: str, spec: ImdlSpec) -> None:
    def builder(num_classes: int, **kwargs: Any) -> ImdlDetector:
        return build_imdl(key, num_classes, **kwargs)

    builder.__doc__ = f"{spec.paper} via IMDL-BenCo's {spec.imdl_name}; see ``build_imdl``."
    DETECTORS.register(f"imdl:{key}", description=f"{spec.paper} (IMDL-BenCo {spec.imdl_name}), binary",
                       tasks=("binary",))(builder)


for _key, _spec in SPECS.items():
    _register(_key, _spec)
