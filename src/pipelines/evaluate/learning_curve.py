"""The learning curve: validation metrics against training steps, one panel per task, so a user
sees the detector learning (issue 19).

The points are the trainer's validation rounds (``train.trainer.val_every`` > 0), which the train
stage keeps in each checkpoint's ``config["history"]["validation"]`` as
``[{"step", "miou", "pixel_accuracy", "image_accuracy"}, ...]`` (``models.detectors.training``:
one confusion matrix over the validation split, background excluded from the mIoU, so for the
binary task the mIoU is the edited-pixel IoU).
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# metric key -> label on the plot; the binary task's mIoU has a single class, the edited one
SERIES = {"miou": "mIoU (edited classes)", "pixel_accuracy": "pixel accuracy", "image_accuracy": "image accuracy"}


def validation_points(checkpoint: dict[str, Any]) -> list[dict[str, float]]:
    """The validation rounds recorded in a checkpoint, sorted by step ([] when none was run).

    Raises ValueError naming the step when a round lacks ``step``.
    """
    history = (checkpoint.get("config") or {}).get("history") or {}
    points = list(history.get("validation") or [])
    for point in points:
        if "step" not in point:
            raise ValueError(f"validation record without a 'step': {point}")
    return sorted(points, key=lambda p: p["step"])


def learning_curve_figure(detector_binary: dict[str, Any], detector_semantic: dict[str, Any]) -> plt.Figure:
    """Two panels (binary, semantic): each ``SERIES`` metric against the step, with the step
    count trained and how training stopped in the title. A task without validation rounds shows
    a note saying how to get them instead of an empty plot."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100, sharey=True)
    for ax, (task, checkpoint) in zip(axes, (("binary", detector_binary), ("semantic", detector_semantic)), strict=True):
        config = checkpoint.get("config") or {}
        history = config.get("history") or {}
        points = validation_points(checkpoint)
        model = (config.get("detector") or {}).get("name", "?")
        ax.set_title(f"{task} ({model}): {history.get('steps', '?')} steps, stopped by {history.get('stopped_by', '?')}",
                     fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, "no validation during training\n(train.trainer.val_every: 0)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=9)
            continue
        steps = [p["step"] for p in points]
        for key, label in SERIES.items():
            values = [p.get(key) for p in points]
            if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                continue  # e.g. pixel metrics of an image-level classifier
            ax.plot(steps, [math.nan if v is None else v for v in values], marker="o", markersize=3, label=label)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("validation split")
    fig.suptitle("Learning curve: validation metrics against training steps", fontsize=10)
    fig.tight_layout()
    return fig
