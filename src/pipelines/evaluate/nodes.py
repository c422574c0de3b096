"""Evaluate: run a trained detector on the evaluation split and compute the seeds' metrics:
pixel accuracy, mIoU (one confusion matrix over the whole split, background excluded as in
DiffSeg30k, and included), boundary F1 at a stated tolerance, and image-level accuracy / AP / AUC."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from models.detectors import detector_from_state  # noqa: E402
from models.detectors.training import predict  # noqa: E402
from models.metrics import BoundaryF1, ConfusionMatrix, image_level_metrics  # noqa: E402
from pipelines.split.items import load_split_items  # noqa: E402

logger = logging.getLogger(__name__)

# Class colours for overlays: untouched is transparent, then one distinct colour per class.
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128], [170, 110, 40],
], dtype=np.uint8)


def colourise(label_map: np.ndarray, image: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend class colours over ``image`` where ``label_map`` > 0; (H,W,3) uint8."""
    colours = PALETTE[label_map % len(PALETTE)].astype(np.float32)
    out = image.astype(np.float32)
    edited = label_map > 0
    out[edited] = (1 - alpha) * out[edited] + alpha * colours[edited]
    return out.round().astype(np.uint8)


def evaluate_checkpoint(
    checkpoint: dict[str, Any],
    splits: pd.DataFrame,
    edited_images: dict[str, Callable],
    label_maps: dict[str, Callable],
    base_images: dict[str, Callable],
    params: dict[str, Any],
) -> tuple[dict[str, Any], plt.Figure, dict[str, plt.Figure]]:
    """Returns (metrics dict, confusion-matrix figure, overlay figures keyed by item id)."""
    config = checkpoint["config"]
    task, names = config["task"], config["class_names"]
    model = detector_from_state(checkpoint["state"], config["detector"])
    items, rows = load_split_items(splits, params["split"], edited_images, label_maps, base_images)
    probabilities, scores = predict(model, [image for image, _ in items], batch_size=int(params.get("batch_size", 8)))
    predictions = probabilities.argmax(axis=1).astype(np.int64)
    targets = np.stack([label if task == "semantic" else (label > 0) for _, label in items]).astype(np.int64)

    tolerance = int(params["boundary_tolerance_px"])
    confusion = ConfusionMatrix(len(names))
    boundary = BoundaryF1(len(names), tolerance_px=tolerance)
    for pred, target in zip(predictions, targets):
        confusion.update(pred, target)
        boundary.update(pred, target)
    is_fake = (rows["kind"] == "edited").to_numpy().astype(int)
    image_metrics = image_level_metrics(scores, is_fake, threshold=float(params["image_threshold"]))
    class_iou = confusion.class_iou()
    metrics = {
        "task": task,
        "model": config["detector"].get("name"),
        "split": params["split"],
        "n_images": len(items), "n_edited": int(is_fake.sum()), "n_authentic": int(len(is_fake) - is_fake.sum()),
        "pixel": {
            "convention": "one confusion matrix accumulated over the whole split (pytorch-fcn / DeepLabV3Plus-Pytorch)",
            "accuracy": confusion.pixel_accuracy(),
            "mean_class_accuracy": confusion.mean_class_accuracy(),
            "miou": confusion.mean_iou(exclude_background=True),
            "miou_with_background": confusion.mean_iou(exclude_background=False),
            "class_iou": {name: _nan_to_none(v) for name, v in zip(names, class_iou)},
            "boundary_f1": boundary.mean(),
            "boundary_f1_per_class": {names[c]: _nan_to_none(v) for c, v in enumerate(boundary.per_class()) if c > 0},
            "boundary_tolerance_px": tolerance,
        },
        "image": {"score": "max over pixels of 1 - p(untouched)", **image_metrics},
        "confusion_matrix": confusion.matrix.tolist(),
        "class_names": names,
        "training": config.get("history", {}),
    }
    metrics = _json_clean(metrics)
    logger.info("%s task: pixel acc %.3f, mIoU %.3f, bF1@%dpx %.3f, image acc %.3f, AP %.3f", task,
                metrics["pixel"]["accuracy"], _or_nan(metrics["pixel"]["miou"]), tolerance,
                _or_nan(metrics["pixel"]["boundary_f1"]), metrics["image"]["accuracy"],
                _or_nan(metrics["image"]["average_precision"]))
    overlays = {
        f"{task}-{rows.at[i, 'item_id']}.png": _overlay_figure(items[i][0], targets[i], predictions[i], names, rows.at[i, "item_id"])
        for i in _overlay_indices(rows, int(params["n_overlays"]))
    }
    return metrics, _confusion_figure(confusion.matrix, names, task), overlays


def _overlay_indices(rows: pd.DataFrame, count: int) -> list[int]:
    """Up to ``count - 1`` edited items, taking each generator (by last edit) in turn so every
    class is shown, plus one authentic item."""
    edited = rows[rows["kind"] == "edited"]
    queues = [list(group.index) for _, group in edited.groupby("last_generator", sort=True)]
    picked: list[int] = []
    while queues and len(picked) < max(count - 1, 1):
        for queue in list(queues):
            if queue and len(picked) < max(count - 1, 1):
                picked.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    authentic = list(rows.index[rows["kind"] == "authentic"])
    return (picked + authentic[:1])[:count]


def _overlay_figure(image, target, prediction, names, title) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=100)
    for ax, (panel, label) in zip(axes, [(image, "image"), (colourise(target, image), "ground truth"),
                                         (colourise(prediction, image), "prediction")]):
        ax.imshow(panel)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    handles = [Patch(color=PALETTE[k % len(PALETTE)] / 255.0, label=name) for k, name in enumerate(names) if k > 0]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


def _confusion_figure(matrix: np.ndarray, names: list[str], task: str) -> plt.Figure:
    """Row-normalised confusion matrix (rows: ground truth), with pixel counts in each cell."""
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = 2.0 + 0.8 * len(names)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=110)
    im = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    for (r, c), value in np.ndenumerate(normalised):
        ax.text(c, r, f"{value:.2f}\n({matrix[r, c]})", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")
    ax.set_title(f"{task} task: pixel confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def combine_metrics(binary: dict[str, Any], semantic: dict[str, Any]) -> dict[str, Any]:
    """One JSON document for both tasks."""
    return {"binary": binary, "semantic": semantic}


def _nan_to_none(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return _nan_to_none(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
