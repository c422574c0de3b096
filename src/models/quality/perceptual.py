"""Full-reference perceptual distance between an edited image and its base, LPIPS-style.

BR-Gen removes outliers by the DreamSim similarity of each forgery to its original: an edit that
changed nothing, or one that wrecked the picture, lies outside a band. Neither DreamSim nor
LPIPS weights can be fetched on these machines, so this is the LPIPS *computation* (Zhang et al.
2018) on a torchvision backbone whose weights come from a local file:

- both images are scaled to [-1, 1] and shifted/scaled per channel as LPIPS does;
- features are taken after each ReLU stage of the backbone (AlexNet: 5, VGG-16: 5 stages);
- each feature vector is unit-normalised over channels, the squared difference is weighted per
  channel (LPIPS' learned linear layer, from ``lin_weights``; uniform 1 without it, LPIPS'
  "baseline" variant), averaged over space and summed over stages.

With torchvision's ImageNet weights (``weights``) and the LPIPS v0.1 linear layers
(``lin_weights``, the ``alex.pth`` / ``vgg.pth`` files the ``lpips`` package ships) this IS
LPIPS. Without ``weights`` the backbone is randomly initialised: the distance is still 0 for
identical images and grows with the size of the change, but random features are NOT perceptual,
so thresholds tuned on real LPIPS do not transfer. The scorer logs a warning in that case.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .base import QUALITY_SCORERS, QualityScorer, check_image

logger = logging.getLogger(__name__)

# Indices into torchvision's ``features`` Sequential that end each LPIPS stage (after a ReLU).
_STAGE_ENDS = {"alexnet": (2, 5, 8, 10, 12), "vgg16": (4, 9, 16, 23, 30)}
# LPIPS' ScalingLayer constants for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class PerceptualDistance(QualityScorer):
    """LPIPS-style distance of an edited image to its reference (base) image; lower = more similar.

    Args:
        backbone: ``alexnet`` (LPIPS default) or ``vgg16``.
        weights: local torchvision state-dict file for the backbone (the whole model's, or only
            its ``features`` part); ``None`` = random init (a stand-in that measures change, not
            perceptual similarity).
        lin_weights: local LPIPS linear-layer file (keys ``lin<k>.model.1.weight``); ``None`` =
            uniform channel weights.
        resolution: resize both images to this square side before comparing; ``None`` = native.
        device: torch device string.
        seed: seed of the random initialisation when ``weights`` is ``None``.
    """

    name = "perceptual"
    higher_is_better = False
    valid_range = (0.0, float("inf"))
    min_side = 32  # AlexNet's strided first layer and two poolings need it
    needs = ("reference",)

    def __init__(self, backbone: str = "alexnet", weights: str | Path | None = None,
                 lin_weights: str | Path | None = None, resolution: int | None = None,
                 device: str = "cpu", seed: int = 0):
        import torch
        import torchvision

        if backbone not in _STAGE_ENDS:
            raise ValueError(f"perceptual backbone must be one of {sorted(_STAGE_ENDS)}, got {backbone!r}")
        self._torch = torch
        self.device = torch.device(device)
        self.backbone = backbone
        self.resolution = resolution
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = getattr(torchvision.models, backbone)(weights=None)
        if weights is not None:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"perceptual backbone weights {path} do not exist")
            state = torch.load(path, map_location="cpu", weights_only=True)
            # a full torchvision state dict, or just its convolutional part (all LPIPS uses)
            features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")} or state
            net.features.load_state_dict(features)
            self.perceptual = True
        else:
            logger.warning("perceptual scorer: no backbone weights given, %s is randomly initialised; its distance "
                           "measures how much changed, it is NOT a perceptual similarity", backbone)
            self.perceptual = False
        features = net.features.eval().to(self.device)
        for p in features.parameters():
            p.requires_grad_(False)
        ends = _STAGE_ENDS[backbone]
        self._stages = [features[start:end] for start, end in zip((0, *ends[:-1]), ends)]
        widths = [self._stage_width(stage) for stage in self._stages]
        self._lin = [torch.ones(1, w, 1, 1, device=self.device) for w in widths]
        if lin_weights is not None:
            state = torch.load(Path(lin_weights), map_location="cpu", weights_only=True)
            for k, w in enumerate(widths):
                weight = state[f"lin{k}.model.1.weight"]
                if tuple(weight.shape) != (1, w, 1, 1):
                    raise ValueError(f"{lin_weights}: lin{k} has shape {tuple(weight.shape)}, {backbone} needs (1, {w}, 1, 1)")
                self._lin[k] = weight.to(self.device)
        self._shift = torch.tensor(_SHIFT, device=self.device).view(1, 3, 1, 1)
        self._scale = torch.tensor(_SCALE, device=self.device).view(1, 3, 1, 1)

    @staticmethod
    def _stage_width(stage) -> int:
        convs = [m for m in stage if hasattr(m, "out_channels")]
        return int(convs[-1].out_channels)

    def _tensor(self, image: np.ndarray):
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        if self.resolution:
            x = torch.nn.functional.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                                                align_corners=False, antialias=True)
        return (x - self._shift) / self._scale

    def score(self, image: np.ndarray, reference: np.ndarray | None = None, **_: object) -> float:
        """Distance between ``image`` and ``reference`` (both (H, W, 3) uint8, same size); 0 = identical.

        Raises:
            ValueError: a bad image, no reference, or the two sizes differ.
        """
        check_image(image, self.min_side)
        if reference is None:
            raise ValueError("perceptual distance needs the reference (base) image")
        check_image(reference, self.min_side)
        if reference.shape != image.shape:
            raise ValueError(f"image {image.shape} and reference {reference.shape} differ in size")
        torch = self._torch
        a, b = self._tensor(image), self._tensor(reference)
        total = 0.0
        with torch.no_grad():
            for stage, lin in zip(self._stages, self._lin):
                a, b = stage(a), stage(b)
                na = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                nb = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
                total += float(((na - nb).pow(2) * lin).sum(dim=1).mean())
        return total


@QUALITY_SCORERS.register("perceptual", description="LPIPS-style distance to the base image on a torchvision "
                                                    "backbone (weights from a local file; random init is a stand-in)")
def build_perceptual(backbone: str = "alexnet", weights: str | None = None, lin_weights: str | None = None,
                     resolution: int | None = None, device: str = "cpu", seed: int = 0) -> PerceptualDistance:
    return PerceptualDistance(backbone=backbone, weights=weights, lin_weights=lin_weights,
                              resolution=resolution, device=device, seed=seed)
