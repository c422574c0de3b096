"""Training and inference for detectors on in-memory samples.

A sample is ``(image, label_map)``: image (H, W, 3) uint8 RGB, label_map (H, W) uint8 with
0 = untouched and k = edited by generator k (a pixel edited twice carries the later edit).
``targets_for_task`` turns a label map into the training/evaluation target of a task:

- ``"binary"``: 1 where the pixel was edited, 0 elsewhere (2 classes);
- ``"semantic"``: the label map itself (1 + number of generators classes).

Plain functions over a model and arrays: no files, no catalog, so the Kedro nodes that call them
stay thin and the tests can run them on a handful of tiny images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .base import SegmentationDetector

logger = logging.getLogger(__name__)

TASKS = ("binary", "semantic")
# Target value of pixels that only exist because of crop padding; cross-entropy skips them.
IGNORE_INDEX = -100


@dataclass
class TrainConfig:
    """How to train a detector (see ``train_detector``).

    task: "binary" (edited vs untouched, the model must have 2 classes) or "semantic"
        (which generator edited each pixel).
    steps: optimiser steps.
    batch_size: images per step (>= 2: DeepLabv3+ cannot train on a batch of 1).
    lr, weight_decay: AdamW.
    warmup_steps: linear warm-up length; afterwards poly decay with power 0.9 down to 0.
    seed: seeds torch (``torch.manual_seed``) and the numpy rng used for sampling/augmentation.
    time_budget_s: stop after the step during which this many seconds have passed (None: no limit).
    hflip: random horizontal flips (p = 0.5).
    crop_size: random square crops of this side (padding with ignored pixels when an image is
        smaller); None trains on whole images, which must then all have the same size.
    log_every: log the loss every this many steps.
    """

    task: Literal["binary", "semantic"]
    steps: int
    batch_size: int = 4
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    seed: int = 0
    time_budget_s: float | None = None
    hflip: bool = True
    crop_size: int | None = None
    log_every: int = 10


def targets_for_task(label_map: np.ndarray, task: str) -> np.ndarray:
    """Target class indices of ``task`` for a label map.

    Args:
        label_map: integer array of any shape, typically (H, W) or (N, H, W); 0 = untouched,
            k > 0 = edited by generator k.
        task: "binary" or "semantic".
    Returns:
        int64 array of the same shape: ``label_map > 0`` (binary) or ``label_map`` (semantic).
    Raises:
        ValueError: unknown task.
    """
    label_map = np.asarray(label_map)
    if task == "binary":
        return (label_map > 0).astype(np.int64)
    if task == "semantic":
        return label_map.astype(np.int64)
    raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def _check_sample(index: int, image: np.ndarray, label_map: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample {index}: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if label_map.shape != image.shape[:2]:
        raise ValueError(f"sample {index}: label_map shape {label_map.shape} != image size {image.shape[:2]}")


def _epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless stream of index batches: each epoch is a fresh permutation cut into full batches;
    the remainder (< batch_size) is dropped, so no batch repeats an image or is short."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _crop(image: np.ndarray, target: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = target.shape
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        target = np.pad(target, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
        height, width = target.shape
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return image[top : top + size, left : left + size], target[top : top + size, left : left + size]


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at 0-based ``step``: linear warm-up, then (1 - progress) ** 0.9."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.steps - cfg.warmup_steps)
    return max(0.0, 1.0 - (step - cfg.warmup_steps) / decay_steps) ** 0.9


def train_detector(
    model: SegmentationDetector,
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place with pixel-wise cross-entropy.

    AdamW, linear warm-up then poly decay (power 0.9); batches are drawn epoch by epoch without
    replacement; random crops / horizontal flips per ``cfg``. The batch size is
    ``min(cfg.batch_size, len(samples))`` and every batch is full, so a batch of one image never
    happens (smp's DeepLabv3+ fails on it in train mode). The model is trained on the device its
    parameters are on and returned to its previous train/eval mode.

    Args:
        model: a detector with 2 classes (binary task) or more than every label value (semantic).
        samples: (image (H, W, 3) uint8, label_map (H, W) uint8) pairs.
        cfg: the training configuration.
        progress: show a tqdm bar with the loss and images/s.
    Returns:
        {"steps": steps done, "loss": per-step losses, "seconds": wall time,
         "images_per_second": float, "stopped_by": "steps" | "time_budget",
         "batch_size": images per step}
    Raises:
        ValueError: fewer than 2 samples, batch_size < 2, unknown task, wrong class count,
            malformed samples, or differently sized images without ``crop_size``.
    """
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; known tasks: {', '.join(TASKS)}")
    if cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got {cfg.steps}")
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch of 1 breaks BatchNorm in train mode), got {cfg.batch_size}")
    if len(samples) < 2:
        raise ValueError(f"need at least 2 training samples (no batch may hold a single image), got {len(samples)}")
    for i, (image, label_map) in enumerate(samples):
        _check_sample(i, image, label_map)
    if cfg.task == "binary" and model.num_classes != 2:
        raise ValueError(f"the binary task needs a 2-class detector, this one has {model.num_classes}")
    max_label = max(int(np.max(label_map)) for _, label_map in samples)
    if cfg.task == "semantic" and max_label >= model.num_classes:
        raise ValueError(f"label value {max_label} needs at least {max_label + 1} classes; the detector has {model.num_classes}")
    if cfg.crop_size is None and len({image.shape for image, _ in samples}) > 1:
        raise ValueError("images differ in size: set crop_size to train on random crops")

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = next(model.parameters()).device
    batch_size = min(cfg.batch_size, len(samples))
    batches = _epoch_batches(len(samples), batch_size, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, cfg))

    was_training = model.training
    model.train()
    losses: list[float] = []
    stopped_by = "steps"
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, disable=not progress, desc=f"train {model.config.get('name', 'detector')} ({cfg.task})")
    try:
        for step in range(cfg.steps):
            images, targets = [], []
            for i in next(batches):
                image, label_map = samples[i]
                target = targets_for_task(label_map, cfg.task)
                if cfg.crop_size is not None:
                    image, target = _crop(image, target, cfg.crop_size, rng)
                if cfg.hflip and rng.random() < 0.5:
                    image, target = image[:, ::-1], target[:, ::-1]
                images.append(image)
                targets.append(target)
            x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            y = torch.from_numpy(np.stack(targets)).to(device)

            loss = F.cross_entropy(model(x), y, ignore_index=IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()

            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at step {step}")
            losses.append(loss_value)
            elapsed = time.perf_counter() - start
            images_per_second = len(losses) * batch_size / elapsed
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{images_per_second:.1f}")
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                logger.info("step %d/%d loss %.4f (%.1f images/s)", step + 1, cfg.steps, loss_value, images_per_second)
            if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s and step + 1 < cfg.steps:
                stopped_by = "time_budget"
                logger.warning("time budget of %.1f s spent after %d of %d steps", cfg.time_budget_s, step + 1, cfg.steps)
                break
    finally:
        bar.close()
        model.train(was_training)

    seconds = time.perf_counter() - start
    return {
        "steps": len(losses),
        "loss": losses,
        "seconds": seconds,
        "images_per_second": len(losses) * batch_size / seconds if seconds > 0 else float("nan"),
        "stopped_by": stopped_by,
        "batch_size": batch_size,
    }


@torch.no_grad()
def predict(model: SegmentationDetector, images: Sequence[np.ndarray], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel class probabilities and image-level scores, in eval mode without gradients.

    Args:
        images: N images (H, W, 3), all the same size; uint8 in [0, 255] or float in [0, 1].
        batch_size: images per forward pass.
    Returns:
        (probabilities float32 (N, C, H, W) summing to 1 over C,
         image_scores float32 (N,) = ``SegmentationDetector.image_scores``).
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
            logits = model(x)
            probabilities.append(logits.softmax(dim=1).float().cpu().numpy())
            scores.append(model.image_scores(logits).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probabilities).astype(np.float32, copy=False), np.concatenate(scores).astype(np.float32, copy=False)
