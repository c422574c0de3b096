"""The IMDL-BenCo models whose constructor or forward cannot be used as is: TruFor, SPAN, CAT-Net
and MSCDI-Net, each wrapped so it takes what ``ImdlDetector`` feeds every IMDL-BenCo model
(``forward(image=, mask=, edge_mask=, label=, shape=)`` with an ImageNet-normalised ``image``)
and returns IMDL-BenCo's output dict. The networks, their layers and their losses are IMDL-BenCo's;
what is ours is said per class. Built by ``imdl.build_imdl`` (``imdl:trufor``, ``imdl:span``,
``imdl:cat_net``, ``imdl:mscdi_net``); this module imports IMDL-BenCo, so import it lazily.

Pretrained files are LOCAL paths; a file that does not exist raises ``FileNotFoundError`` naming
the argument, and a file whose tensors do not fit raises ``ValueError`` (for the ``strict=False``
loads, one that shares no tensor with the module: IMDL-BenCo would silently keep random weights).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from IMDLBenCo.model_zoo.cat_net import network_CAT
from IMDLBenCo.model_zoo.mscdi_net.MSCDI_Net import MSCDI_Net
from IMDLBenCo.model_zoo.span import PixelAttention as span_attention
from IMDLBenCo.model_zoo.span import mantranet as span_mantranet
from IMDLBenCo.model_zoo.span.SPAN import SPAN
from IMDLBenCo.model_zoo.trufor import config as trufor_config
from IMDLBenCo.model_zoo.trufor.cmx.builder_np_conf import myEncoderDecoder
from IMDLBenCo.model_zoo.trufor.trufor import Trufor
from torch import nn
from yacs.config import CfgNode

from .base import IMAGENET_MEAN, IMAGENET_STD, read_weights_file
from .jpeg_dct import luma_dct_coefficients, luma_qtable

logger = logging.getLogger(__name__)


def _unit_range(image: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: (B, 3, H, W) back to [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * std + mean).clamp(0, 1)


def read_state(path: str | os.PathLike, key: str, arg: str) -> dict[str, torch.Tensor]:
    """``base.read_weights_file`` (safetensors or ``torch.load`` of tensors only, training
    wrappers unwrapped; also ``{"network": ...}``, Noiseprint++'s) with errors naming the entry
    and the argument.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file does not hold a state dict of tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"imdl:{key}: {arg} file not found: {path}")
    try:
        state = read_weights_file(path)
    except ValueError:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("network") if isinstance(state, dict) else None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"imdl:{key}: {arg} file {path} does not hold a state dict of tensors") from None
    return state


def require_files(key: str, **paths: str | None) -> None:
    """Before a (slow) build: every given path is a file. Raises FileNotFoundError naming it."""
    for arg, path in paths.items():
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"imdl:{key}: {arg} file not found: {path}")


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], path: str, key: str, arg: str) -> int:
    """Copy the tensors of ``state`` whose name and shape match ``module``'s (a ``strict=False``
    load that cannot silently load nothing). Returns how many were copied.

    Raises:
        ValueError: no tensor of the file fits the module.
    """
    own = module.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"imdl:{key}: {arg} file {path} shares no tensor (name and shape) with "
                         f"{type(module).__name__}; is it the right file?")
    module.load_state_dict(matching, strict=False)
    return len(matching)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: str, key: str, arg: str) -> None:
    """``module.load_state_dict(state)`` with a clear error naming the file."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"imdl:{key}: {arg} file {path} does not fit {type(module).__name__}: {exc}") from exc


# --- TruFor ------------------------------------------------------------------------------------

# IMDL-BenCo's ``configs/trufor.yaml`` (TruFor's own trufor.yaml, GRIP-UNINA/TruFor), the parts the
# network reads: Segformer MiT-B2 dual encoder (RGB + Noiseprint++), MLP decoder, confidence
# decoder and "confpool" detection head. The PyPI package does not ship the file, hence this copy.
TRUFOR_CONFIG = {
    "DATASET": {"NUM_CLASSES": 2},
    "MODEL": {
        "NAME": "detconfcmx",
        "MODS": ("RGB", "NP++"),
        "EXTRA": {
            "BACKBONE": "mit_b2",
            "DECODER": "MLPDecoder",
            "DECODER_EMBED_DIM": 512,
            "PREPRC": "imagenet",
            "BN_EPS": 0.001,
            "BN_MOMENTUM": 0.1,
            "DETECTION": "confpool",
            "CONF": True,
        },
    },
}


def trufor_cfg(decoder_embed_dim: int = 512, config_path: str | None = None) -> CfgNode:
    """TruFor's yacs config: IMDL-BenCo's defaults + ``TRUFOR_CONFIG`` (+ a trufor.yaml of the
    user's, merged last). A copy: IMDL-BenCo's ``update_config`` mutates its module-global one."""
    cfg = trufor_config._C.clone()
    cfg.defrost()
    cfg.merge_from_other_cfg(CfgNode(TRUFOR_CONFIG))
    cfg.MODEL.EXTRA.DECODER_EMBED_DIM = int(decoder_embed_dim)
    if config_path:
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"imdl:trufor: config_path file not found: {config_path}")
        cfg.merge_from_file(config_path)
    cfg.freeze()
    return cfg


def dual_path_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A single-stream MiT state dict for both streams of CMX's dual encoder: each patch-embed,
    block and norm tensor also goes to its ``extra_`` twin (CMX's ``load_dualpath_model``, which
    TruFor's own ``init_weights`` uses; IMDL-BenCo's phase 2 loads the RGB stream only)."""
    dual = {}
    for name, tensor in state.items():
        dual[name] = tensor
        for part in ("patch_embed", "block", "norm"):
            if name.startswith(part):
                dual["extra_" + name] = tensor
                break
    return dual


def noiseprint_state(path: str) -> dict[str, torch.Tensor]:
    """The Noiseprint++ DnCNN state dict from ``path``: IMDL-BenCo's separated ``noiseprint.pth``
    (the flat DnCNN state dict), TruFor's ``{"network": ...}`` Noiseprint++ file, or a whole TruFor
    checkpoint (``trufor.pth.tar``: ``{"state_dict": {"dncnn.<i>...": ...}}``, the file conf/gpu
    gives NFA-ViT)."""
    state = read_state(path, "trufor", "np_pretrain_weights")
    if any(k.startswith("dncnn.") for k in state):
        state = {k[len("dncnn."):]: v for k, v in state.items() if k.startswith("dncnn.")}
    return state


class TruforLocalization(Trufor):
    """TruFor (Guillaro et al., CVPR 2023) in its phase 2, localisation training: Noiseprint++
    (frozen, from ``np_pretrain_weights``) and RGB into the MiT-B2 dual encoder (both streams from
    ``mit_b2_pretrain_weights``), anomaly decoder trained with IMDL-BenCo's phase-2 loss
    (0.3 weighted BCE + 0.7 Dice). Its ``forward``/losses are IMDL-BenCo's ``Trufor``'s.

    Ours: the constructor (no module-global config, files optional for ``random_init`` /
    checkpoint reloads, load checks); the input, which TruFor wants in [0, 1] (its encoder applies
    ImageNet normalisation itself and Noiseprint++ was trained on [0, 1] pixels: IMDL-BenCo feeds
    its already-normalised tensor, normalising twice); and ``train()``, which keeps the frozen
    Noiseprint++ in eval mode (else its BatchNorm statistics would drift while "frozen").

    Phase 3 (not built): the confidence decoder and the ``confpool`` detection head trained on the
    phase-2 checkpoint with everything else frozen (TruFor sec. 3.3; IMDL-BenCo's phase 3 loss:
    MSE to the true-class-probability map + 0.5 BCE on the image label). It would need the
    phase-2 checkpoint as input, a parameter to select the phase, ``image_head=True`` for the
    ``pred_label`` it trains, and ``decode_head_conf`` trainable (IMDL-BenCo freezes it too).
    Until then ``pred_label`` comes from an untrained head and the entry's image score is the
    project's max-over-pixels one.
    """

    def __init__(self, cfg: CfgNode, np_pretrain_weights: str | None = None,
                 mit_b2_pretrain_weights: str | None = None):
        nn.Module.__init__(self)
        self.model = myEncoderDecoder(cfg=cfg)
        self.phase = 2
        if np_pretrain_weights:
            state = noiseprint_state(np_pretrain_weights)
            load_strict(self.model.dncnn, state, np_pretrain_weights, "trufor", "np_pretrain_weights")
        if mit_b2_pretrain_weights:
            state = read_state(mit_b2_pretrain_weights, "trufor", "mit_b2_pretrain_weights")
            load_matching(self.model.backbone, dual_path_state(state), mit_b2_pretrain_weights, "trufor",
                          "mit_b2_pretrain_weights")
        self.model.dncnn.requires_grad_(False)
        self.model.detection.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.dncnn.eval()
        return self

    def forward(self, image, mask, label, *args, **kwargs):
        return super().forward(_unit_range(image), mask, label)


def build_trufor(np_pretrain_weights: str | None = None, mit_b2_pretrain_weights: str | None = None,
                 decoder_embed_dim: int = 512, config_path: str | None = None) -> TruforLocalization:
    """``imdl:trufor``: ``decoder_embed_dim`` is the MLP decoders' width (512 in the paper);
    ``config_path`` an optional trufor.yaml merged over ``TRUFOR_CONFIG``."""
    require_files("trufor", np_pretrain_weights=np_pretrain_weights, mit_b2_pretrain_weights=mit_b2_pretrain_weights,
                  config_path=config_path)
    return TruforLocalization(trufor_cfg(decoder_embed_dim, config_path), np_pretrain_weights, mit_b2_pretrain_weights)


# --- SPAN --------------------------------------------------------------------------------------


class SpanFixed(SPAN):
    """SPAN (Hu et al., ECCV 2020): ManTra-Net's feature extractor (IMTFE, from ``weight_path``,
    the pretrained ManTra-Net's ``IMTFEv4.pt``), five pixel-attention layers (shifts 1..81) and a
    four-convolution head, BCE loss. ``forward`` is IMDL-BenCo's ``SPAN``'s.

    Ours: the head. IMDL-BenCo's ``SPAN.Last_Layer_0725`` (0.1.45) builds four NEW randomly
    initialised ``nn.Conv2d`` inside every forward call: they are not registered, so never trained
    by the optimiser, never saved, and differ on every call. Here the same four 5x5 convolutions
    (32 -> 16 -> 8 -> 4 -> 1 with ReLU) are created once in ``__init__`` as ``last_layer``. Also
    ours: the device follows the input (upstream pins the one it was built on).
    """

    def __init__(self, weight_path: str | None = None, layers_steps=(1, 3, 9, 27, 81)):
        nn.Module.__init__(self)
        self.device = torch.device("cpu")
        self.BCE_loss = nn.BCEWithLogitsLoss()
        self.featex = span_mantranet.IMTFE(device=self.device)
        if weight_path:
            state = read_state(weight_path, "span", "weight_path")
            load_strict(self.featex, state, weight_path, "span", "weight_path")
        self.pixel_attention = nn.ModuleList(
            [span_attention.PixelAttention(shift=step, in_channels=32, use_bn=False, use_res=True) for step in layers_steps]
        )
        self.outlier_trans = nn.Conv2d(self.featex.middle_and_last_block[-1].out_channels, 32, kernel_size=1, bias=True)
        widths = (32, 16, 8, 4, 1)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Conv2d(width_in, width_out, kernel_size=5, padding=2))
            if index < len(widths) - 2:
                layers.append(nn.ReLU())
        self.last_layer = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, mask=None, edge_mask=None, shape=None, *args, **kwargs):
        # IMTFE keeps its Bayar constraint masks as plain tensors and moves its layers to
        # ``self.device`` on every call: point both at the input's device.
        featex = self.featex
        if featex.bayar_mask.device != image.device:
            featex.bayar_mask = featex.bayar_mask.to(image.device)
            featex.bayar_final = featex.bayar_final.to(image.device)
        self.device = featex.device = image.device
        return super().forward(image, mask=mask)


def build_span(weight_path: str | None = None) -> SpanFixed:
    """``imdl:span`` (the paper's five pixel-attention shifts)."""
    require_files("span", weight_path=weight_path)
    return SpanFixed(weight_path)


# --- CAT-Net -----------------------------------------------------------------------------------

# IMDL-BenCo's ``configs/CAT_full.yaml`` (= CAT-Net's official experiments/CAT_full.yaml), the
# parts the network reads: HRNet-W48 RGB stream (stages 1-4), DCT stream (stages 3-4), fusion
# stage 5 (see ``cat_net_cfg`` for overriding it).
def _hrnet_stage(modules: int, block: str, blocks: int, channels: tuple[int, ...]) -> dict[str, Any]:
    """One HRNet stage in CAT_full.yaml's layout: ``blocks`` blocks on each of the branches."""
    return {"NUM_MODULES": modules, "NUM_BRANCHES": len(channels), "BLOCK": block, "NUM_BLOCKS": [blocks] * len(channels),
            "NUM_CHANNELS": list(channels), "FUSE_METHOD": "SUM"}


CAT_NET_EXTRA = {
    "FINAL_CONV_KERNEL": 1,
    "STAGE1": _hrnet_stage(1, "BOTTLENECK", 4, (64,)),
    "STAGE2": _hrnet_stage(1, "BASIC", 4, (48, 96)),
    "STAGE3": _hrnet_stage(4, "BASIC", 4, (48, 96, 192)),
    "STAGE4": _hrnet_stage(3, "BASIC", 4, (48, 96, 192, 384)),
    "DC_STAGE3": _hrnet_stage(3, "BASIC", 4, (96, 192)),
    "DC_STAGE4": _hrnet_stage(2, "BASIC", 4, (96, 192, 384)),
    "STAGE5": _hrnet_stage(1, "BASIC", 4, (24, 48, 96, 192)),
}
# CAT-Net's DCT volume: one-hot of |coefficient| clipped at T (its AbstractDataset, "DCTvol").
DCT_CLIP = 20
# CAT_full.yaml's class weights for (untouched, edited) in its cross-entropy.
CAT_NET_CLASS_WEIGHTS = (0.5, 2.5)


def dct_volume(coefficients: torch.Tensor, clip: int = DCT_CLIP) -> torch.Tensor:
    """CAT-Net's "DCTvol" input: (B, H, W) integer coefficients -> float (B, clip + 1, H, W),
    channel k = 1 where |coefficient| == k, the last channel where |coefficient| >= clip."""
    magnitude = coefficients.abs().clamp(max=clip).long()
    return F.one_hot(magnitude, clip + 1).permute(0, 3, 1, 2).float()


class CatNetOnRgb(nn.Module):
    """CAT-Net (Kwon et al., IJCV 2022): an HRNet RGB stream and a DCT stream fed with the
    Y-channel quantised DCT coefficients (as the 21-bin "DCTvol") and the quantisation table,
    fused at stage 5; class-weighted 2-way cross-entropy at 1/4 resolution. The network and the
    loss are IMDL-BenCo's (``network_CAT``); this replaces IMDL-BenCo's ``Cat_Net`` wrapper, whose
    ``.cuda()`` calls make it GPU-only, and its ``cat_net_post_func`` data hook.

    Ours: the JPEG side. Our samples are decoded RGB, so the coefficients are computed here the way
    an encoder at ``jpeg_quality`` would (``jpeg_dct``: Y, level shift, 8x8 DCT-II, IJG table,
    rounding), from the image resized to the input size and rounded to 8-bit samples. The default,
    quality 100 (the all-ones table), is what CAT-Net's own code does for a non-JPEG input
    (``Splicing/data/dataset_arbitrary.py`` saves it with ``quality=100, subsampling=0`` before
    reading its coefficients). IMDL-BenCo instead re-encodes every sample with Pillow's default
    quality (75) in ``cat_net_post_func``, from the tensor after its ImageNet normalisation (cast
    to uint8), and feeds that normalised tensor as CAT-Net's RGB; here the RGB stream gets CAT-Net's
    own scaling of the 8-bit pixels, (p - 127.5) / 127.5. ``pred_mask`` is upsampled bilinearly
    (IMDL-BenCo: bicubic, which can leave [0, 1]).
    """

    def __init__(self, cfg: CfgNode, pretrained_rgb: str | None = None, pretrained_dct: str | None = None,
                 jpeg_quality: int = 100):
        super().__init__()
        self.model = network_CAT.CAT_Net(cfg)
        with _silenced(network_CAT.logger):  # its "cannot load pretrained" warnings: the files are ours to load
            self.model.init_weights("", "")  # CAT-Net's N(0, 0.001) convolutions, unit BatchNorm
        if pretrained_rgb:
            state = read_state(pretrained_rgb, "cat_net", "pretrained_rgb")
            load_matching(self.model, state, pretrained_rgb, "cat_net", "pretrained_rgb")
        if pretrained_dct:  # CAT-Net's init_weights keeps the file's last layer out
            state = read_state(pretrained_dct, "cat_net", "pretrained_dct")
            state = {k: v for k, v in state.items() if not k.startswith("last_layer")}
            load_matching(self.model, state, pretrained_dct, "cat_net", "pretrained_dct")
        self.loss = network_CAT.CrossEntropy(ignore_label=-1, weight=torch.tensor(CAT_NET_CLASS_WEIGHTS))
        self.jpeg_quality = int(jpeg_quality)
        self.register_buffer("qtable", torch.as_tensor(luma_qtable(self.jpeg_quality), dtype=torch.float32),
                             persistent=False)

    def network_input(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ImageNet-normalised (B, 3, H, W), sides multiples of 32 -> (CAT-Net's 24-channel input:
        RGB in [-1, 1] + DCT volume, the (B, 1, 8, 8) quantisation tables)."""
        pixels = (_unit_range(image.detach()) * 255).round()
        coefficients = luma_dct_coefficients(pixels, self.qtable)
        rgb = (pixels - 127.5) / 127.5
        tables = self.qtable.expand(image.shape[0], 1, 8, 8)
        return torch.cat([rgb, dct_volume(coefficients)], dim=1).to(image.dtype), tables

    def forward(self, image: torch.Tensor, mask: torch.Tensor, *args, **kwargs) -> dict[str, Any]:
        inputs, tables = self.network_input(image)
        logits = self.model(inputs, tables)
        loss = self.loss(logits, mask[:, 0].long())
        edited = F.softmax(logits, dim=1)[:, 1:2]
        edited = F.interpolate(edited, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return {"backward_loss": loss, "pred_mask": edited, "pred_label": None}


def cat_net_cfg(hrnet_extra: dict[str, Any] | None = None, cfg_file: str | None = None) -> CfgNode:
    """CAT-Net's config: ``CAT_NET_EXTRA``, or the ``MODEL.EXTRA`` of a CAT-Net yaml
    (``cfg_file``, e.g. IMDL-BenCo's CAT_full.yaml; its weight paths are NOT read, pass them as
    arguments), then ``hrnet_extra``'s entries over it (a dict entry updates that stage).

    Raises:
        FileNotFoundError: ``cfg_file`` is not a file.
        ValueError: ``cfg_file`` has no ``MODEL.EXTRA``; an ``hrnet_extra`` entry it does not have.
    """
    extra = CfgNode(CAT_NET_EXTRA)
    if cfg_file:
        require_files("cat_net", cfg_file=cfg_file)
        import yaml

        with open(cfg_file) as stream:
            loaded = yaml.safe_load(stream) or {}
        if not isinstance(loaded.get("MODEL"), dict) or not isinstance(loaded["MODEL"].get("EXTRA"), dict):
            raise ValueError(f"imdl:cat_net: cfg_file {cfg_file} has no MODEL.EXTRA (a CAT-Net HRNet config)")
        extra = CfgNode(loaded["MODEL"]["EXTRA"])
    for name, value in (hrnet_extra or {}).items():
        if name not in extra:
            raise ValueError(f"imdl:cat_net: unknown hrnet_extra entry {name!r}; known: {sorted(extra)}")
        if isinstance(value, dict):
            extra[name].update(value)
        else:
            extra[name] = value
    return CfgNode({"MODEL": {"EXTRA": extra}, "DATASET": {"NUM_CLASSES": 2}})


@contextlib.contextmanager
def _silenced(log: logging.Logger):
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def build_cat_net(input_size: int, pretrained_rgb: str | None = None, pretrained_dct: str | None = None,
                  jpeg_quality: int = 100, hrnet_extra: dict[str, Any] | None = None,
                  cfg_file: str | None = None) -> CatNetOnRgb:
    """``imdl:cat_net`` (config: ``cat_net_cfg``). Raises ValueError: ``input_size`` not a
    multiple of 32 (its DCT stream works on 8x8 blocks and its HRNet halves the side four times);
    a bad ``jpeg_quality``; FileNotFoundError: a given file is missing."""
    if input_size % 32:
        raise ValueError(f"imdl:cat_net needs an input_size that is a multiple of 32, got {input_size}")
    require_files("cat_net", pretrained_rgb=pretrained_rgb, pretrained_dct=pretrained_dct)
    return CatNetOnRgb(cat_net_cfg(hrnet_extra, cfg_file), pretrained_rgb, pretrained_dct, jpeg_quality)


# --- MSCDI-Net ---------------------------------------------------------------------------------

MSCDI_BACKBONES = ("mit_bit2", "mit_bit3", "mit_bit4", "mit_bit5")


class MscdiNetQuiet(MSCDI_Net):
    """IMDL-BenCo's ``MSCDI_Net`` unchanged, but its forward's ``torch.tensor(image)`` copy warns
    on every call; the warning is kept out of the logs."""

    def forward(self, image, mask, edge_mask, label, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            return super().forward(image, mask, edge_mask, label)


def build_mscdi_net(input_size: int, backbone_weights_path: str | None = None, backbone: str = "mit_bit4",
                    glca: int = 12, **kwargs: Any) -> MSCDI_Net:
    """``imdl:mscdi_net``: GLCA-SegFormer (MiT-b4 by default, IMDL-BenCo's run script) + its
    cross-domain fusion decoder, BCE + 20 x edge-weighted BCE. ``kwargs`` are its constructor's
    (``noise_model``, ``ff_domain``, ``fusion_mode``).

    Raises:
        ValueError: unknown ``backbone``; ``input_size`` not a multiple of 256 while ``glca`` > 0
            (its local-attention windows are 8 tokens on the 1/32 grid) or of 32 otherwise; the
            backbone file shares no tensor with the encoder.
        FileNotFoundError: ``backbone_weights_path`` is not a file.
    """
    if backbone not in MSCDI_BACKBONES:
        raise ValueError(f"imdl:mscdi_net: backbone must be one of {MSCDI_BACKBONES}, got {backbone!r}")
    side = 256 if glca > 0 else 32
    if input_size % side:
        raise ValueError(f"imdl:mscdi_net with glca={glca} needs an input_size that is a multiple of {side}, got {input_size}")
    require_files("mscdi_net", backbone_weights_path=backbone_weights_path)
    if backbone_weights_path:
        network = MscdiNetQuiet(backbone=backbone, backbone_weights_path=backbone_weights_path, glca=glca, **kwargs)
        # Its encoder loads the file with strict=False: check that something was loaded.
        state = read_state(backbone_weights_path, "mscdi_net", "backbone_weights_path")
        load_matching(network.segformer.segformer, state, backbone_weights_path, "mscdi_net", "backbone_weights_path")
        return network
    import tempfile

    # Random init (``random_init`` / a checkpoint follows): its constructor insists on a file.
    with tempfile.TemporaryDirectory() as folder:
        empty = os.path.join(folder, "no_weights.pth")
        torch.save({}, empty)
        return MscdiNetQuiet(backbone=backbone, backbone_weights_path=empty, glca=glca, **kwargs)


BUILDERS = {
    "trufor": build_trufor,
    "span": build_span,
    "cat_net": build_cat_net,
    "mscdi_net": build_mscdi_net,
}
