"""Train: fit a segmentation detector on the train split, for the binary task (edited or not)
or the semantic task (which generator edited each pixel)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.detectors import create_detector, detector_state
from models.detectors.training import TrainConfig, train_detector
from pipelines.inpaint.nodes import generator_names
from pipelines.split.items import load_split_items

logger = logging.getLogger(__name__)

TASKS = ("binary", "semantic")


def class_names_for(task: str, generators: list[dict[str, Any]]) -> list[str]:
    """Class names in label order: background first, then edited / one per generator."""
    if task == "binary":
        return ["untouched", "edited"]
    if task == "semantic":
        return ["untouched", *generator_names(generators)]
    raise ValueError(f"train task must be one of {TASKS}, got {task!r}")


def _train(task: str, splits: pd.DataFrame, edited_images: dict[str, Callable], label_maps: dict[str, Callable],
           base_images: dict[str, Callable], params: dict[str, Any]) -> dict[str, Any]:
    names = class_names_for(task, params["generators"])
    items, rows = load_split_items(splits, params.get("split", "train"), edited_images, label_maps, base_images)
    torch.manual_seed(int(params.get("seed", 0)))
    torch.set_num_threads(max(1, int(params.get("num_threads") or torch.get_num_threads())))
    model = create_detector(params["model"], num_classes=len(names), **(params.get("model_kwargs") or {}))
    cfg = TrainConfig(task=task, **params["trainer"])
    logger.info("training %s (%s task, %d classes) on %d items (%d edited, %d authentic)", params["model"], task,
                len(names), len(items), int((rows["kind"] == "edited").sum()), int((rows["kind"] == "authentic").sum()))
    history = train_detector(model, items, cfg)
    state, config = detector_state(model)
    loss = history["loss"]
    summary = {key: history[key] for key in ("steps", "seconds", "images_per_second", "stopped_by")}
    summary["first_loss"] = float(np.mean(loss[:5])) if loss else None
    summary["last_loss"] = float(np.mean(loss[-5:])) if loss else None
    logger.info("trained %s/%s: %s", params["model"], task, summary)
    return {"state": state, "config": {"detector": config, "task": task, "class_names": names,
                                       "trainer": cfg.__dict__, "history": summary}}


def train_binary_detector(splits, edited_images, label_maps, base_images, params):
    """Binary task: class 1 = any edited pixel. Returns a checkpoint dict {state, config}."""
    return _train("binary", splits, edited_images, label_maps, base_images, params)


def train_semantic_detector(splits, edited_images, label_maps, base_images, params):
    """Semantic task: class k = pixel last edited by generator k. Returns a checkpoint dict."""
    return _train("semantic", splits, edited_images, label_maps, base_images, params)
