"""Nodes of the baselines protocol. Models come from ``models.detectors`` directly (no other
stage's nodes are imported): every detector in ``baselines.detectors`` is built, trained on the
binary task with its own objective on the same rows, and evaluated on the same evaluation rows.

The table follows IMDL-BenCo's layout (its ``evaluation`` package): pixel-level F1, IoU and AUC
per image (threshold 0.5, averaged over the EDITED evaluation images, since an authentic image
scores 0 on all three by IMDL-BenCo's convention), image-level F1, accuracy and ROC AUC over all
evaluation images, plus training seconds and parameter counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.detectors import create_detector
from models.detectors.training import TrainConfig, predict, train_detector
from models.metrics import binary_pixel_counts, image_level_metrics, per_image_pixel_auc, per_image_pixel_scores

logger = logging.getLogger(__name__)

COLUMNS = ["detector", "pixel_f1", "pixel_iou", "pixel_auc", "image_f1", "image_accuracy", "image_auc",
           "train_seconds", "parameters", "trainable_parameters", "steps", "n_train", "n_eval"]


def select_rows(splits: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """The rows of ``params['train_split']`` and ``params['eval_split']`` (at most
    ``params['max_items']`` of each, first rows first), with a ``role`` column (train / eval).

    Raises:
        ValueError: either split has no rows (the message lists the splits present).
    """
    parts = []
    for role, split in (("train", params["train_split"]), ("eval", params["eval_split"])):
        rows = splits[splits["split"] == split]
        if rows.empty:
            raise ValueError(f"baselines: split {split!r} has no rows (present: {sorted(splits['split'].unique())})")
        limit = params.get("max_items")
        parts.append((rows.head(int(limit)) if limit else rows).assign(role=role))
    return pd.concat(parts, ignore_index=True)


def _value(loader: Any) -> Any:
    return loader() if callable(loader) else loader


def load_samples(rows: pd.DataFrame, images: Mapping[str, Mapping[str, Callable]],
                 label_maps: Mapping[str, Callable]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image (H, W, 3) uint8, label map (H, W) uint8) of each row; authentic rows get zeros.

    Raises:
        ValueError: a row names an image or label partition that does not exist.
    """
    samples = []
    for row in rows.itertuples():
        source = images.get(row.image_dataset, {})
        if row.image_key not in source:
            raise ValueError(f"baselines: item {row.item_id} names {row.image_dataset}/{row.image_key}, which does not exist")
        image = np.asarray(_value(source[row.image_key]))
        if row.kind == "authentic":
            samples.append((image, np.zeros(image.shape[:2], np.uint8)))
            continue
        if row.label_key not in label_maps:
            raise ValueError(f"baselines: item {row.item_id} names label_maps/{row.label_key}, which does not exist")
        samples.append((image, np.asarray(_value(label_maps[row.label_key]))))
    return samples


def evaluate_binary(model: torch.nn.Module, samples: list[tuple[np.ndarray, np.ndarray]], batch_size: int) -> dict[str, float]:
    """IMDL-BenCo's six numbers for ``model`` on ``samples`` (see the module docstring); pixel
    numbers are NaN for image-level classifiers (``pixel_level`` False) or without edited images."""
    edited_prob, scores, targets = [], [], []
    for image, label in samples:  # one at a time: images may differ in size
        probabilities, score = predict(model, [image], batch_size=batch_size)
        edited_prob.append(1.0 - probabilities[0, 0])
        scores.append(float(score[0]))
        targets.append(label > 0)
    is_fake = np.array([t.any() for t in targets], dtype=np.int64)
    image = image_level_metrics(np.array(scores), is_fake)
    row = {"image_f1": image["f1"], "image_accuracy": image["accuracy"], "image_auc": image["roc_auc"],
           "pixel_f1": float("nan"), "pixel_iou": float("nan"), "pixel_auc": float("nan")}
    edited = [i for i in range(len(samples)) if is_fake[i]]
    if getattr(model, "pixel_level", True) and edited:
        counts = np.concatenate([binary_pixel_counts(edited_prob[i], targets[i]) for i in edited])
        per_image = per_image_pixel_scores(counts)
        auc = np.concatenate([per_image_pixel_auc(edited_prob[i], targets[i]) for i in edited])
        row.update(pixel_f1=float(per_image["f1"].mean()), pixel_iou=float(per_image["iou"].mean()),
                   pixel_auc=float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"))
    return row


def train_one(name: str, kwargs: Mapping[str, Any], samples: list, params: Mapping[str, Any]) -> tuple[torch.nn.Module, dict]:
    """Build ``name`` (binary task) and train it with ``params['trainer']``; returns (model, facts)."""
    torch.manual_seed(int(params.get("seed", 0)))
    model = create_detector(name, num_classes=2, **dict(kwargs or {}))
    settings = {"seed": int(params.get("seed", 0)), **dict(params.get("trainer") or {})}
    started = time.perf_counter()
    history = train_detector(model, samples, TrainConfig(task="binary", **settings), progress=False)
    facts = {"train_seconds": time.perf_counter() - started, "steps": int(history["steps"]),
             "parameters": int(sum(p.numel() for p in model.parameters())),
             "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}
    return model, facts


def run_baselines(rows: pd.DataFrame, edited_images: Mapping, label_maps: Mapping, base_images: Mapping,
                  params: Mapping[str, Any], on_trained: Callable[[str, torch.nn.Module, dict], None] | None = None,
                  ) -> pd.DataFrame:
    """Train and evaluate every detector named in ``params['detectors']`` (a list; builder
    arguments from ``params['models'][name]``) on the same rows; one row per detector, in that
    order, columns ``COLUMNS``. ``on_trained(name, model, row)`` (optional; the Kedro node has
    none) sees each trained and evaluated model before it is dropped, e.g. to save or check it:
    the models are trained one at a time and never held together.

    Raises:
        ValueError: no detector listed, or a bad row (see ``load_samples``).
        UnknownNameError: a detector name is not registered.
    """
    detectors = list(params.get("detectors") or [])
    models = dict(params.get("models") or {})
    if not detectors:
        raise ValueError("baselines.detectors is empty: list the registry entries to compare")
    images = {"edited_images": edited_images, "base_images": base_images}
    train = load_samples(rows[rows["role"] == "train"], images, label_maps)
    held = load_samples(rows[rows["role"] == "eval"], images, label_maps)
    table = []
    for name in detectors:
        model, facts = train_one(name, models.get(name), train, params)
        scores = evaluate_binary(model, held, int(params.get("eval_batch_size", 1)))
        table.append({"detector": name, **scores, **facts, "n_train": len(train), "n_eval": len(held)})
        logger.info("baseline %s: %s", name, table[-1])
        if on_trained is not None:
            on_trained(name, model, table[-1])
        del model  # before the next one is built
    return pd.DataFrame(table, columns=COLUMNS)


def baselines_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, IMDL-BenCo's column order, three decimals (NaN shown as "-")."""
    header = ["detector", "pixel F1", "pixel IoU", "pixel AUC", "image F1", "image Acc", "image AUC",
              "train s", "params (M)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table.itertuples():
        numbers = [row.pixel_f1, row.pixel_iou, row.pixel_auc, row.image_f1, row.image_accuracy, row.image_auc]
        cells = ["-" if not np.isfinite(v) else f"{v:.3f}" for v in numbers]
        lines.append(f"| {row.detector} | " + " | ".join(cells) + f" | {row.train_seconds:.1f} | {row.parameters / 1e6:.2f} |")
    return "\n".join(lines) + "\n"
