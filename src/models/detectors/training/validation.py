"""Validation during training: the evaluation metrics' own ``ConfusionMatrix`` over whole images.

The scores are those of ``models.metrics`` (the evaluate stage's definitions): mIoU over the
edited classes (background excluded, as DiffSeg30k) and pixel accuracy from one confusion matrix
accumulated over the validation set, plus image accuracy at 0.5 of the model's image score
(``inference.logits_and_scores``, the score ``predict`` reports).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ...metrics import ConfusionMatrix
from ..base import SegmentationDetector
from ..inference import logits_and_scores
from .data import check_sample, targets_for_task
from .distributed import autocast

METRICS = ("miou", "pixel_accuracy", "image_accuracy")


def _batches(samples: Sequence, task: str, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images uint8 (B, H, W, 3), targets int64 (B, H, W)) of up to ``batch_size`` consecutive
    samples of one size (a size change starts a new batch)."""
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(len(samples)):
        image, label_map = samples[i]
        check_sample(i, image, label_map)
        if pending and (pending[0][0].shape != image.shape or len(pending) >= batch_size):
            yield np.stack([p[0] for p in pending]), np.stack([p[1] for p in pending])
            pending.clear()
        pending.append((image, targets_for_task(label_map, task)))
    if pending:
        yield np.stack([p[0] for p in pending]), np.stack([p[1] for p in pending])


@torch.no_grad()
def validate(model: SegmentationDetector, samples: Sequence, task: str, device: torch.device,
             amp_dtype: torch.dtype | None = None, batch_size: int = 4) -> dict[str, float]:
    """Scores of ``model`` on ``samples`` in eval mode (its mode is restored afterwards).

    Args:
        samples: (image (H, W, 3) uint8, label_map (H, W) uint8) pairs, whole images.
        task: "binary" or "semantic" (see ``targets_for_task``).
        amp_dtype: autocast dtype of the forward pass (None: float32).
    Returns:
        {"miou": ConfusionMatrix.mean_iou() (background excluded), "pixel_accuracy":
         ConfusionMatrix.pixel_accuracy(), "image_accuracy": fraction of images whose
         ``score > 0.5`` equals "has an edited pixel"}; mIoU and pixel accuracy are NaN for
         image-level models (``pixel_level = False``).
    Raises:
        ValueError: a malformed sample (named by index), or a label value outside the model's classes.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(model.num_classes) if model.pixel_level else None
    correct = total = 0
    try:
        for images, targets in _batches(samples, task, batch_size):
            x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            with autocast(device, amp_dtype):
                logits, scores = logits_and_scores(model, x)
            if confusion is not None:
                confusion.update(logits.argmax(1).cpu().numpy(), targets)
            edited = (targets.reshape(len(targets), -1) > 0).any(1)
            correct += int(((scores.float().cpu().numpy() > 0.5) == edited).sum())
            total += len(targets)
    finally:
        model.train(was_training)
    return {
        "miou": confusion.mean_iou(exclude_background=True) if confusion is not None else float("nan"),
        "pixel_accuracy": confusion.pixel_accuracy() if confusion is not None else float("nan"),
        "image_accuracy": correct / total if total else float("nan"),
    }
