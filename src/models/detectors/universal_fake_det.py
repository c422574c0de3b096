"""UniversalFakeDetect (Ojha et al., CVPR 2023, "Towards Universal Fake Image Detectors that
Generalize Across Generative Models"): a linear probe on frozen CLIP ViT-L/14 image features.
DiffSeg30k's second image-level baseline (Acc 0.860 / mAP 0.934).

As in the paper: the CLIP image embedding (the projected [CLS] token of the last layer, 768-d
for ViT-L/14), frozen, and one trainable linear layer with BCE. The image is resized to CLIP's
input size (224) and normalised with CLIP's statistics; the paper centre-crops 224 px instead
(at test time the whole image is seen here, so an edit near the border is not cut away).

An image-level model: its logits are constant over space and ``pixel_level`` is False (see
``ImageClassifierDetector``). For the semantic task the probe has one logit per class.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import DETECTORS, ImageClassifierDetector, weights_follow_active
from .clip import CLIP_MEAN, CLIP_STD, FrozenModule, load_clip_vision

logger = logging.getLogger(__name__)


class LinearProbe(nn.Module):
    """CLIP-normalised (B, 3, H, W) -> frozen CLIP image embedding -> linear -> (B, outputs)."""

    def __init__(self, vision: nn.Module, outputs: int):
        super().__init__()
        self.clip = FrozenModule(vision)
        self.image_size = vision.config.image_size
        self.fc = nn.Linear(vision.config.projection_dim, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if x.shape[-2:] != (self.image_size, self.image_size):
                x = F.interpolate(x, size=(self.image_size,) * 2, mode="bicubic", align_corners=False)
            features = self.clip.module(pixel_values=x).image_embeds
        return self.fc(features)


class UniversalFakeDetDetector(ImageClassifierDetector):
    """Linear probe on frozen CLIP; only ``fc`` trains."""


@DETECTORS.register("universal_fake_det", description="UniversalFakeDetect: linear probe on frozen CLIP ViT-L/14 image features (image-level only)")
def build_universal_fake_det(
    num_classes: int, clip_model: str | None = None, clip_config: dict[str, Any] | None = None,
    random_init: bool = False,
) -> UniversalFakeDetDetector:
    """UniversalFakeDetect with one logit (binary) or ``num_classes`` logits (semantic).

    Args:
        clip_model: local folder or cached Hugging Face id of a CLIP (paper: OpenAI ViT-L/14);
            None builds the vision tower from ``clip_config`` at random init, which
            needs ``random_init=True`` (a frozen random encoder is otherwise refused).
        clip_config: a CLIPConfig (its vision part is used) or CLIPVisionConfig as a dict;
            default ViT-L/14. Recorded automatically when loaded from ``clip_model``.
        random_init: random frozen CLIP weights are meant (see ``clip.load_clip``).
    Raises:
        ValueError: ``clip_model`` None without ``random_init``.
    """
    vision, resolved = load_clip_vision(clip_model, clip_config, detector="universal_fake_det",
                                        rebuild_only=weights_follow_active(), random_init=random_init)
    network = LinearProbe(vision, 1 if num_classes == 2 else num_classes)
    detector = UniversalFakeDetDetector(network, num_classes, input_divisor=1, mean=CLIP_MEAN, std=CLIP_STD)
    if clip_model is not None:
        detector.resolved_config = {"clip_config": resolved}
    return detector
