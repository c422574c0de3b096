"""Inference for every detector of the registry: per-pixel probabilities and image scores.

Evaluation (``pipelines.evaluate``) and the trainer's validation both read a detector's output
through ``logits_and_scores``, so the image score means the same thing in both places.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .base import SegmentationDetector, edited_logit

__all__ = ["image_score_definition", "logits_and_scores", "predict"]


def logits_and_scores(model: SegmentationDetector, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel logits float32 (B, C, H, W) and image scores float32 (B,) in [0, 1] of float images
    ``x`` (B, 3, H, W) in [0, 1]: the model's own image head where it has one (sigmoid of its
    edited logit), else ``model.image_scores`` of the pixel logits. No mode change, no no_grad."""
    if model.has_image_head:
        outputs = model(x, return_outputs=True)
        return outputs.pixel_logits.float(), torch.sigmoid(edited_logit(outputs.image_logits).float())
    logits = model(x).float()
    return logits, model.image_scores(logits)


def image_score_definition(model: SegmentationDetector) -> str:
    """One line saying how ``predict``'s image scores are computed for ``model`` (for reports)."""
    if model.has_image_head:
        return f"sigmoid of the model's own image head ({model.config.get('name', type(model).__name__)})"
    return "max over pixels of 1 - p(untouched)"


@torch.no_grad()
def predict(model: SegmentationDetector, images: Sequence[np.ndarray], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel class probabilities and image-level scores, in eval mode without gradients.

    The image score is the model's own when it has an image head (``sigmoid`` of
    ``forward_with_image``'s image logit: NFA-ViT, MaskCLIP, CNNSpot, UniversalFakeDet), else
    ``SegmentationDetector.image_scores`` (max over pixels of 1 - p(untouched)); see
    ``image_score_definition``.

    Args:
        images: N images (H, W, 3), all the same size; uint8 in [0, 255] or float in [0, 1].
        batch_size: images per forward pass.
    Returns:
        (probabilities float32 (N, C, H, W) summing to 1 over C, image_scores float32 (N,)).
        Memory is N * C * H * W * 4 bytes: call it on chunks of a large set.
    Raises:
        ValueError: no images, images of different sizes, or not (H, W, 3).
    """
    if len(images) == 0:
        raise ValueError("predict needs at least one image")
    shapes = {np.shape(image) for image in images}
    if len(shapes) > 1:
        raise ValueError(f"predict needs images of one size, got {sorted(shapes)}")
    (shape,) = shapes
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"images must be (H, W, 3), got {shape}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probabilities, scores = [], []
    try:
        for start in range(0, len(images), batch_size):
            chunk = np.stack(images[start : start + batch_size])
            x = torch.from_numpy(chunk).to(device).permute(0, 3, 1, 2).float()
            if chunk.dtype == np.uint8:
                x = x / 255.0
            logits, image_scores = logits_and_scores(model, x)
            probabilities.append(logits.softmax(dim=1).float().cpu().numpy())
            scores.append(image_scores.float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probabilities).astype(np.float32, copy=False), np.concatenate(scores).astype(np.float32, copy=False)
