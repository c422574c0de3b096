"""Noise-residual detectors for CPU: a fixed SRM or a constrained (Bayar) convolution in front of
a light U-Net, the embedded default's detector.

Why a residual front end: an inpainted region's content can look plausible, but its high-frequency
noise differs from the camera noise around it (a Telea / Navier-Stokes fill is smooth, a diffusion
fill carries the decoder's noise). Image forensics therefore feeds a CNN noise residuals instead of
(or next to) RGB:
- SRM: the three fixed 5x5 high-pass kernels of the spatial rich model (Fridrich & Kodovsky, 2012)
  as used by RGB-N (Zhou et al., CVPR 2018, Sec. 3.2: "SRM filter layer", truncation T=2 in the
  steganalysis original) and IMDL-BenCo's ``srm_*`` models.
- Bayar: a learnable first convolution constrained to a prediction-error filter (Bayar & Stamm,
  IH&MMSec 2016, Sec. 3: centre weight -1, the others summing to 1), IMDL-BenCo's ``bayar_*``.
Both branches are concatenated with the (ImageNet-normalised) RGB so colour context stays available
for the semantic task (which generator).

The body is a small U-Net (Ronneberger et al., 2015) after a stride-2 stem, 4 stages: about 0.5 M
parameters at the default width, so a training step at 128 px runs in a fraction of a second on
2 CPU cores. Weights are always randomly initialised (there is no pretrained residual net to load).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import DETECTORS, IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, SegmentationDetector

# SRM kernels (RGB-N Sec. 3.2 / Fridrich & Kodovsky): 2nd-order "KB", 3rd-order "KV" and a 1-D
# 2nd-order filter, each normalised by its centre weight so residuals are in pixel units.
_SRM_KERNELS = (
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]],
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]],
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
)
_SRM_SCALES = (4.0, 12.0, 2.0)


class SRMFilter(nn.Module):
    """Fixed SRM high-pass filters applied to each colour channel.

    ``forward(x)``: x float (B, 3, H, W) in [0, 1] -> (B, 9, H, W) residuals in pixel units (x 255)
    truncated to [-T, T] and divided by T, so the output is in [-1, 1]. Truncation keeps edges from
    dominating the faint noise the filters are for (SRM's quantise-and-truncate step).
    """

    def __init__(self, truncation: float = 3.0):
        super().__init__()
        if truncation <= 0:
            raise ValueError(f"truncation must be > 0, got {truncation}")
        kernels = torch.tensor(_SRM_KERNELS, dtype=torch.float32) / torch.tensor(_SRM_SCALES).view(3, 1, 1)
        # (9, 1, 5, 5): three filters per colour channel, applied depthwise (groups=3)
        self.register_buffer("weight", kernels.repeat(3, 1, 1).unsqueeze(1), persistent=False)
        self.truncation = float(truncation)
        self.out_channels = 9

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.conv2d(x * 255.0, self.weight, padding=2, groups=3)
        return residual.clamp(-self.truncation, self.truncation) / self.truncation


class BayarConv2d(nn.Module):
    """Constrained convolution (Bayar & Stamm 2016): every kernel's centre is -1 and its other
    weights sum to 1, so each output is a learned prediction error (a noise residual).

    ``forward(x)``: x float (B, in_channels, H, W) in [0, 1] -> (B, out_channels, H, W), computed on
    pixel values x 255 and scaled by 1/``scale`` (about unit variance on camera noise).
    The constraint is applied on the fly (not by projecting after each optimiser step), as in
    IMDL-BenCo's ``BayarConv2d``, so any optimiser keeps it.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, kernel_size: int = 5, scale: float = 8.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        self.scale = float(scale)
        # the free weights: every kernel position but the centre
        self.free = nn.Parameter(torch.rand(out_channels, in_channels, kernel_size * kernel_size - 1) * 0.01)

    def kernel(self) -> torch.Tensor:
        """(out, in, k, k) constrained kernel."""
        k2 = self.kernel_size * self.kernel_size
        free = self.free / self.free.sum(dim=-1, keepdim=True).clamp_min(1e-8)
        centre = k2 // 2
        minus_one = -torch.ones_like(free[..., :1])
        full = torch.cat([free[..., :centre], minus_one, free[..., centre:]], dim=-1)
        return full.view(*free.shape[:2], self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x * 255.0, self.kernel(), padding=self.kernel_size // 2) / self.scale


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ResidualUNet(nn.Module):
    """Residual front end(s) + RGB -> U-Net -> per-pixel logits.

    ``forward(x)``: x float (B, 3, H, W) in [0, 1] with H, W multiples of 2**len(widths)
    (the wrapper pads) -> logits (B, classes, H, W) (computed at H/2 x W/2, bilinearly upsampled).
    """

    def __init__(self, classes: int, front: tuple[str, ...], widths: tuple[int, ...], bayar_channels: int = 3,
                 global_context: bool = False):
        super().__init__()
        unknown = sorted(set(front) - {"rgb", "srm", "bayar"})
        if unknown or not front:
            raise ValueError(f"front must name some of rgb, srm, bayar; got {list(front)}")
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 stages, got {list(widths)}")
        self.front = tuple(front)
        self.srm = SRMFilter() if "srm" in front else None
        self.bayar = BayarConv2d(3, bayar_channels) if "bayar" in front else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        cin = 3 * ("rgb" in front) + (self.srm.out_channels if self.srm else 0) + (bayar_channels if self.bayar else 0)
        # A strided stem: the residuals are taken at full resolution, the U-Net runs from 1/2 (edit
        # masks are regions, not single pixels; this halves the CPU cost of a step).
        self.stem = nn.Sequential(nn.Conv2d(cin, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        cin = widths[0]
        self.down = nn.ModuleList()
        for width in widths:
            self.down.append(_block(cin, width))
            cin = width
        # ParseNet-style global context (Liu et al., 2015, Sec. 3): the bottleneck sees the mean of its
        # own features over the whole input, so "smoother than the rest of this image" is learnable,
        # not only "smooth" (an out-of-focus background is smooth and untouched).
        self.context = nn.Sequential(nn.Conv2d(2 * cin, cin, 1, bias=False), nn.BatchNorm2d(cin),
                                     nn.ReLU(inplace=True)) if global_context else None
        self.up = nn.ModuleList(
            _block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], classes, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        if "rgb" in self.front:
            parts.append((x - self.mean) / self.std)
        if self.srm is not None:
            parts.append(self.srm(x))
        if self.bayar is not None:
            parts.append(self.bayar(x))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.features(x))
        skips = []
        for i, block in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        if self.context is not None:
            h = self.context(torch.cat([h, h.mean(dim=(2, 3), keepdim=True).expand_as(h)], dim=1))
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return F.interpolate(self.head(h), size=x.shape[-2:], mode="bilinear", align_corners=False)


def generator_balanced_weights(target: torch.Tensor, num_classes: int, balance: float) -> torch.Tensor:
    """Per-class cross-entropy weights that even out the edit classes of one batch.

    Background (class 0) keeps weight 1; an edit class k present in the batch with n_k labelled
    pixels gets (mean over present edit classes of n / n_k) ** ``balance``, so the rarer generator
    counts more and the weight of edited against untouched pixels stays about the same (with one
    edit class, the binary task, every weight is 1). ``balance`` 0 is plain cross-entropy, 1 full
    inverse-frequency balancing. Computed from the batch's labels only: deterministic.

    Args:
        target: (B, H, W) int64 labels, ``IGNORE_INDEX`` for unlabelled pixels.
    Returns:
        (num_classes,) float32 weights on ``target``'s device.
    """
    counts = torch.bincount(target[target != IGNORE_INDEX].flatten(), minlength=num_classes)[:num_classes].float()
    weights = torch.ones(num_classes, device=target.device)
    edit = counts[1:]
    present = edit > 0
    if balance > 0 and int(present.sum()) > 1:
        ratio = edit[present].mean() / edit.clamp_min(1.0)
        weights[1:] = torch.where(present, ratio.pow(balance), torch.ones_like(ratio))
    return weights


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of the edit classes over the whole batch (Milletari et al., V-Net 2016, Eq. 1
    with the squares dropped, as in IMDL-BenCo's ``dice`` losses), averaged over the edit classes
    labelled in the batch; 0 when the batch has no edited pixel.

    Cross-entropy weighs every pixel alike, so on images that are mostly untouched it rewards a
    cautious detector; Dice scores the overlap of each edit class directly (the IoU / F1 the
    targets measure). Pooled over the batch (not per image) so authentic crops, whose Dice is
    undefined, count through their false positives.

    Args:
        logits: (B, C, H, W) raw logits, class 0 = background.
        target: (B, H, W) int64 labels, ``IGNORE_INDEX`` for unlabelled pixels.
    Returns:
        scalar float32 tensor in [0, 1].
    """
    labelled = (target != IGNORE_INDEX).unsqueeze(1).float()
    probs = logits.float().softmax(dim=1)[:, 1:] * labelled
    onehot = F.one_hot(target.clamp_min(0), logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float() * labelled
    intersection = (probs * onehot).sum(dim=(0, 2, 3))
    denominator = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    present = onehot.sum(dim=(0, 2, 3)) > 0
    if not bool(present.any()):
        return logits.sum() * 0.0
    dice = (2.0 * intersection + 1.0) / (denominator + 1.0)
    return (1.0 - dice[present]).mean()


class ResidualDetector(SegmentationDetector):
    """``SegmentationDetector`` with two optional loss terms on top of pixel cross-entropy:
    ``generator_balance`` (see ``generator_balanced_weights``: Telea and Navier-Stokes fills look
    alike to a residual front end, and without it the rarer of the two is never predicted) and
    ``dice_weight`` x ``soft_dice_loss`` (the overlap the IoU / F1 targets score)."""

    def __init__(self, *args, generator_balance: float = 0.0, dice_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0.0 <= generator_balance <= 1.0:
            raise ValueError(f"generator_balance must be in [0, 1], got {generator_balance}")
        if dice_weight < 0.0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}")
        self.generator_balance = float(generator_balance)
        self.dice_weight = float(dice_weight)

    def loss(self, outputs, target, image_label):
        if self.generator_balance == 0.0 or self.num_classes <= 2:  # one edit class: nothing to balance
            pixel, parts = super().loss(outputs, target, image_label)
        else:
            weights = generator_balanced_weights(target, self.num_classes, self.generator_balance)
            per_pixel = F.cross_entropy(outputs.pixel_logits.float(), target, weight=weights,
                                        ignore_index=IGNORE_INDEX, reduction="none")
            # normalised by the summed weights of the labelled pixels (a weighted mean), 0 if none
            labelled = target != IGNORE_INDEX
            norm = weights[target.clamp_min(0)][labelled].sum().clamp_min(1.0)
            pixel = per_pixel.sum() / norm
            parts = {"pixel": pixel.detach()}
        if self.dice_weight == 0.0:
            return pixel, parts
        dice = soft_dice_loss(outputs.pixel_logits, target)
        parts["dice"] = dice.detach()
        return pixel + self.dice_weight * dice, parts


def _build(num_classes: int, front: tuple[str, ...], widths: list[int] | tuple[int, ...], single_logit: bool,
           generator_balance: float = 0.0, dice_weight: float = 0.0,
           global_context: bool = False) -> SegmentationDetector:
    widths = tuple(int(w) for w in widths)
    network = ResidualUNet(1 if single_logit else num_classes, front, widths, global_context=global_context)
    # mean 0 / std 1: the network needs raw [0, 1] pixels for its residual filters and normalises
    # its own RGB branch.
    return ResidualDetector(network, num_classes, input_divisor=2 ** len(widths), single_logit=single_logit,
                            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), generator_balance=generator_balance,
                            dice_weight=dice_weight)


@DETECTORS.register("srm_unet", description="SRM noise residuals + RGB into a light U-Net (CPU default)")
def build_srm_unet(num_classes: int, widths: list[int] = (24, 48, 64, 96), rgb: bool = True,
                   single_logit: bool = False, generator_balance: float = 0.0,
                   dice_weight: float = 0.0, global_context: bool = False) -> SegmentationDetector:
    """Fixed SRM residuals (9 channels) and, with ``rgb``, the normalised image, into a U-Net.

    Args:
        widths: channels of the U-Net stages, from 1/2 resolution down; input sides are padded to a
            multiple of 2**len(widths).
        rgb: also feed the RGB image (colour context helps tell generators apart).
        single_logit: binary task only: one output channel trained with BCE.
        generator_balance: 0-1, how strongly the pixel loss evens out the generators of a batch
            (``generator_balanced_weights``); no effect on the binary task.
        dice_weight: >= 0, weight of ``soft_dice_loss`` added to the pixel cross-entropy (0: none).
        global_context: the U-Net's bottleneck also sees its features' mean over the whole input.
    """
    return _build(num_classes, ("rgb", "srm") if rgb else ("srm",), widths, single_logit, generator_balance, dice_weight,
                  global_context)


@DETECTORS.register("bayar_unet", description="constrained (Bayar) conv residuals + RGB into a light U-Net")
def build_bayar_unet(num_classes: int, widths: list[int] = (24, 48, 64, 96), rgb: bool = True,
                     single_logit: bool = False, generator_balance: float = 0.0,
                   dice_weight: float = 0.0, global_context: bool = False) -> SegmentationDetector:
    """A learned constrained convolution (3 residual channels) and, with ``rgb``, the normalised
    image, into a U-Net. Arguments as for ``srm_unet``."""
    return _build(num_classes, ("rgb", "bayar") if rgb else ("bayar",), widths, single_logit, generator_balance, dice_weight,
                  global_context)


@DETECTORS.register("rgb_unet", description="the same light U-Net on RGB only (ablation of the residual front end)")
def build_rgb_unet(num_classes: int, widths: list[int] = (24, 48, 64, 96),
                   single_logit: bool = False, generator_balance: float = 0.0,
                   dice_weight: float = 0.0, global_context: bool = False) -> SegmentationDetector:
    """The U-Net of ``srm_unet`` without a residual front end, for the side-by-side benchmark."""
    return _build(num_classes, ("rgb",), widths, single_logit, generator_balance, dice_weight,
                  global_context)
