"""Training and inference for every detector of the registry, on in-memory or lazily decoded samples.

A sample is ``(image, label_map)``: image (H, W, 3) uint8 RGB, label_map (H, W) uint8 with
0 = untouched and k = edited by generator k (a pixel edited twice carries the later edit).
``targets_for_task`` turns a label map into the training/evaluation target of a task:

- ``"binary"``: 1 where the pixel was edited, 0 elsewhere (2 classes);
- ``"semantic"``: the label map itself (1 + number of generators classes).

``samples`` may be a list of decoded pairs or any ``Sequence`` whose ``__getitem__`` decodes on
demand (``pipelines.train`` passes one over the catalog's loaders): with ``num_workers > 0`` the
decoding and augmentation then happen in DataLoader worker processes, off the training loop.

One trainer, ``train_detector``, for every registry entry: it calls the model's own objective
(``model.loss``: pixel cross-entropy, plus the image loss of entries with an image head, plus
MaskCLIP's edge term), with mixed precision on GPUs, gradient accumulation, poly or cosine decay
after a linear warm-up, periodic and best-validation checkpoints (safetensors + JSON), resume
after a crash, early stopping, and DistributedDataParallel under ``torchrun`` or across all
visible GPUs. Plain functions over a model and arrays: no catalog, so the Kedro nodes stay thin.

Reproducibility: the images of micro-batch m are fixed by (seed, m) (an epoch-wise permutation)
and each sample's augmentation by (seed, m, slot), whatever process decodes it, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .augment import Augmentation, augment_sample
from .base import IGNORE_INDEX, SegmentationDetector, edited_logit
from .checkpoint import detector_from_state, detector_state, save_checkpoint

logger = logging.getLogger(__name__)

TASKS = ("binary", "semantic")
MONITORS = ("auto", "miou", "pixel_accuracy", "image_accuracy")
TRAIN_STATE_FORMAT = "editlens-train-state/1"

__all__ = [
    "IGNORE_INDEX",
    "TASKS",
    "TrainConfig",
    "image_score_definition",
    "predict",
    "targets_for_task",
    "train_detector",
]


@dataclass
class TrainConfig:
    """How to train a detector (see ``train_detector``). Every field but ``task`` and ``steps``
    has a default, so ``TrainConfig(task=..., steps=..., **params)`` works from a params dict.

    task: "binary" (edited vs untouched, the model must have 2 classes) or "semantic"
        (which generator edited each pixel).
    steps: optimiser steps (in total, counting the steps before a resume).
    batch_size: images per micro-batch and process (>= 2: DeepLabv3+ cannot train on a batch
        of 1). Images per optimiser step = batch_size x grad_accum_steps x processes.
    grad_accum_steps: micro-batches whose gradients are summed before each optimiser step.
    lr, weight_decay: AdamW.
    warmup_steps: linear warm-up length; afterwards ``schedule`` decays to ``min_lr_ratio`` x lr.
    schedule: "poly" ((1 - progress) ** poly_power, DeepLab's) or "cosine".
    seed: seeds torch, numpy and python, the batch order and every augmentation.
    time_budget_s: stop after the step during which this many seconds have passed (None: no limit).
    hflip: random horizontal flips (p = 0.5); ``augment["hflip"]`` overrides it.
    crop_size: random square crops of this side (padding with ignored pixels when an image is
        smaller); None trains on whole images, which must then all have the same size.
    augment: ``augmentation.Augmentation`` fields (resize / blur / JPEG ...). Fields left unset
        take the model's ``train_augmentation`` (CNNSpot: blur + JPEG 0.5), then the defaults.
    log_every: log the loss every this many steps (0: never).
    amp: "auto" (bfloat16 on CUDA when supported, else float16 with loss scaling; off on CPU),
        "off", "bf16" or "fp16".
    device: None (where the model's parameters are), "auto" (the process's CUDA device when
        there is one, else CPU), or a torch device string.
    num_workers: DataLoader worker processes that decode and augment samples (0: in-process).
    prefetch_batches: micro-batches each worker prepares ahead.
    multiprocessing_context: "fork" / "spawn" / "forkserver" for the workers; None = Python's default.
    val_every: evaluate on ``val_samples`` every this many steps (0: only at the end when
        ``val_samples`` are given).
    monitor: validation score that selects the best checkpoint and drives early stopping;
        "auto" = "miou" for pixel-level models, "image_accuracy" for image classifiers.
    early_stopping_patience: stop after this many validations without improving the best score
        by more than ``early_stopping_min_delta`` (None: never).
    checkpoint_dir: folder for ``step-NNNNNNNN/`` (every ``checkpoint_every`` steps and at the
        end, with optimizer state; ``last.json`` points at the newest) and ``best-NNNNNNNN/``
        (best validation score; ``best.json``). None: no checkpoints.
    checkpoint_every: steps between checkpoints (0: only at the end).
    resume: continue from ``checkpoint_dir``'s last checkpoint if there is one (same model
        config and task required); otherwise a fresh run, which clears old checkpoints there.
    restore_best: at the end, load the best-validation weights into the model (when a
        validation ran).
    grad_clip_norm: clip the global gradient norm (None: no clipping).
    distributed: "auto" (DistributedDataParallel under torchrun, or one process per GPU when
        several CUDA GPUs are visible), "off", or a process count to spawn (CPU: gloo backend).
    find_unused_parameters: passed to DistributedDataParallel.
    deterministic: ask torch for deterministic kernels (slower on GPU).
    """

    task: Literal["binary", "semantic"]
    steps: int
    batch_size: int = 4
    grad_accum_steps: int = 1
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    schedule: Literal["poly", "cosine"] = "poly"
    poly_power: float = 0.9
    min_lr_ratio: float = 0.0
    seed: int = 0
    time_budget_s: float | None = None
    hflip: bool = True
    crop_size: int | None = None
    augment: dict[str, Any] | None = None
    log_every: int = 10
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    device: str | None = None
    num_workers: int = 0
    prefetch_batches: int = 2
    multiprocessing_context: str | None = None
    val_every: int = 0
    val_batch_size: int = 4
    monitor: str = "auto"
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    restore_best: bool = True
    grad_clip_norm: float | None = None
    distributed: str | int = "auto"
    find_unused_parameters: bool = False
    deterministic: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def dominant_class(target: np.ndarray) -> int:
    """The image-level label of a target: 0 when no pixel is edited, else the most frequent
    edited class (ignored pixels do not count)."""
    edited = target[(target > 0) & (target != IGNORE_INDEX)]
    if edited.size == 0:
        return 0
    return int(np.bincount(edited.astype(np.int64)).argmax())


def _check_sample(index: int, image: np.ndarray, label_map: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample {index}: image must be (H, W, 3) uint8, got {np.shape(image)} {getattr(image, 'dtype', type(image))}")
    if np.shape(label_map) != image.shape[:2]:
        raise ValueError(f"sample {index}: label_map shape {np.shape(label_map)} != image size {image.shape[:2]}")


# --------------------------------------------------------------------------------------------
# Data: a keyed dataset and a step-indexed batch sampler
# --------------------------------------------------------------------------------------------


class TrainingStream(torch.utils.data.Dataset):
    """Decodes and augments one sample per key ``(micro_batch, slot, index)``.

    Returns (image uint8 (3, S, S), target int16 (S, S), image label int). Errors name the
    sample index; they are raised in the worker and re-raised by the DataLoader.
    """

    def __init__(self, samples: Sequence, task: str, num_classes: int, crop_size: int | None,
                 augmentation: Augmentation, seed: int):
        self.samples = samples
        self.task = task
        self.num_classes = num_classes
        self.crop_size = crop_size
        self.augmentation = augmentation
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        micro_batch, slot, index = key
        image, label_map = self.samples[index]
        _check_sample(index, image, label_map)
        target = targets_for_task(label_map, self.task)
        top = int(target.max()) if target.size else 0
        if top >= self.num_classes:
            raise ValueError(f"sample {index}: label value {top} needs at least {top + 1} classes; the detector has {self.num_classes}")
        rng = np.random.default_rng([self.seed, micro_batch, slot])
        image, target = augment_sample(image, target.astype(np.int16), self.crop_size, self.augmentation, rng)
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(target), dominant_class(target)


def _collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shapes = {tuple(image.shape) for image, _, _ in batch}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size ({sorted(shapes)}): set crop_size to train on random crops")
    images = torch.stack([image for image, _, _ in batch])
    targets = torch.stack([target for _, target, _ in batch])
    labels = torch.tensor([label for _, _, label in batch], dtype=torch.int64)
    return images, targets, labels


class StepBatchSampler(torch.utils.data.Sampler):
    """Endless keyed micro-batches starting at ``start``: micro-batch m holds the m-th chunk of
    ``batch_size x world_size`` indices of a per-epoch permutation seeded by (seed, epoch)
    (full chunks only, so no batch is short or repeats an image), this process's share of it.
    Plays DistributedSampler's role, and makes the order a function of m alone (exact resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.rank, self.world_size = rank, world_size
        self.chunk = batch_size * world_size
        self.per_epoch = n // self.chunk
        if self.per_epoch < 1:
            raise ValueError(f"{n} samples cannot fill one batch of {batch_size} per process x {world_size} processes")

    def keys(self, micro_batch: int, permutation: np.ndarray) -> list[tuple[int, int, int]]:
        position = micro_batch % self.per_epoch
        chunk = permutation[position * self.chunk : (position + 1) * self.chunk]
        first = self.rank * self.batch_size
        return [(micro_batch, first + i, int(chunk[first + i])) for i in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        epoch, permutation = -1, None
        micro_batch = self.start
        while True:
            if micro_batch // self.per_epoch != epoch:
                epoch = micro_batch // self.per_epoch
                permutation = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            yield self.keys(micro_batch, permutation)
            micro_batch += 1


def _worker_init(_: int) -> None:
    # Each worker decodes one sample at a time: intra-op threads would only oversubscribe the CPU.
    # (OpenCV's thread pool is left alone: cv2.setNumThreads in a forked child deadlocks on the
    # parent's pool state.)
    torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------
# Schedules, precision, distribution
# --------------------------------------------------------------------------------------------


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at 0-based ``step``: linear warm-up, then poly or cosine decay to
    ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    if cfg.schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        decay = max(0.0, 1.0 - progress) ** cfg.poly_power
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * decay


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or device.type != "cuda":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            logger.info("amp=%s requested on %s: training in float32", amp, device)
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _resolve_device(cfg: TrainConfig, model: torch.nn.Module, local_rank: int) -> torch.device:
    if cfg.device is None:
        device = next(model.parameters()).device
        if dist.is_initialized() and device.type == "cuda":
            device = torch.device("cuda", local_rank)
        return device
    if cfg.device == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def _env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _init_torchrun_group() -> None:
    """Join the process group torchrun describes in the environment (once per process)."""
    if dist.is_initialized() or _env_world_size() <= 1:
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    logger.info("joined torch.distributed group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)


def _spawn_count(cfg: TrainConfig) -> int:
    """Processes to spawn for this call (0: train in this process)."""
    if dist.is_initialized() or _env_world_size() > 1:
        return 0
    if isinstance(cfg.distributed, int) or (isinstance(cfg.distributed, str) and cfg.distributed.isdigit()):
        count = int(cfg.distributed)
        return count if count > 1 else 0
    if cfg.distributed == "off":
        return 0
    if cfg.distributed != "auto":
        raise ValueError(f"distributed must be 'auto', 'off' or a process count, got {cfg.distributed!r}")
    if cfg.device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return torch.cuda.device_count()
    return 0


class _Objective(torch.nn.Module):
    """model + its loss as one module, so DistributedDataParallel wraps the whole step."""

    def __init__(self, model: SegmentationDetector):
        super().__init__()
        self.model = model

    def forward(self, x, target, image_label):
        outputs = self.model(x, return_outputs=True)
        return self.model.loss(outputs, target, image_label)


# --------------------------------------------------------------------------------------------
# Checkpoints with training state
# --------------------------------------------------------------------------------------------


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.name)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    return tensors


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _save_step(folder: Path, kind: str, step: int, model: SegmentationDetector, extra: dict[str, Any],
               optimizer: torch.optim.Optimizer | None = None, scaler_state: dict[str, Any] | None = None) -> Path:
    """Write ``<folder>/<kind>-<step>/`` (detector.safetensors + detector.json [+ train_state.safetensors])
    through a temporary folder, then point ``<folder>/<kind>.json`` at it and remove the older ones.
    A crash at any moment leaves the previous complete checkpoint and its pointer intact."""
    name = f"{'step' if kind == 'last' else kind}-{step:08d}"
    final = folder / name
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-{name}-"))
    try:
        save_checkpoint(tmp / "detector", model, extra=extra)
        if optimizer is not None:
            tensors, meta = _optimizer_tensors(optimizer)
            tensors.update(_rng_tensors())
            meta_json = json.dumps({"format": TRAIN_STATE_FORMAT, "optimizer": meta, "scaler": scaler_state or {}})
            save_file(tensors, str(tmp / "train_state.safetensors"), metadata={"meta": meta_json})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_json_atomically(folder / f"{kind}.json", {"step": step, "path": name, **{k: extra[k] for k in ("metrics",) if k in extra}})
    prefix = "step-" if kind == "last" else f"{kind}-"
    for old in folder.glob(f"{prefix}*"):
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _clear_checkpoints(folder: Path) -> None:
    for pointer in ("last.json", "best.json"):
        (folder / pointer).unlink(missing_ok=True)
    for pattern in ("step-*", "best-*", ".tmp-*"):
        for path in folder.glob(pattern):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def checkpoint_path(checkpoint_dir: str | Path, kind: Literal["last", "best"] = "last") -> Path | None:
    """The ``detector`` stem of the newest ``last`` or ``best`` checkpoint in ``checkpoint_dir``
    (for ``checkpoint.load_checkpoint``), or None when there is none."""
    pointer = Path(checkpoint_dir) / f"{kind}.json"
    if not pointer.is_file():
        return None
    stem = Path(checkpoint_dir) / json.loads(pointer.read_text())["path"] / "detector"
    return stem if Path(str(stem) + ".safetensors").is_file() else None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def _validate(model: SegmentationDetector, samples: Sequence, task: str, device: torch.device,
              amp_dtype: torch.dtype | None, batch_size: int) -> dict[str, float]:
    """Pixel accuracy and mIoU (one confusion matrix over the set, background excluded; NaN for
    image-level models) and image accuracy at 0.5 of the model's image score."""
    was_training = model.training
    model.eval()
    classes = model.num_classes
    confusion = torch.zeros(classes * classes, dtype=torch.int64)
    correct = total = 0
    try:
        pending: list[tuple[np.ndarray, np.ndarray]] = []

        def flush() -> None:
            nonlocal correct, total, confusion
            images = torch.from_numpy(np.stack([image for image, _ in pending])).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            targets = torch.from_numpy(np.stack([target for _, target in pending])).to(device)
            with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                logits, scores = _logits_and_scores(model, images)
            if model.pixel_level:
                index = targets * classes + logits.argmax(1)
                confusion += torch.bincount(index.flatten(), minlength=classes * classes).cpu()
            labels = (targets.flatten(1) > 0).any(1)
            correct += int(((scores > 0.5) == labels).sum())
            total += len(pending)
            pending.clear()

        for i in range(len(samples)):
            image, label_map = samples[i]
            _check_sample(i, image, label_map)
            if pending and pending[0][0].shape != image.shape:
                flush()
            pending.append((image, targets_for_task(label_map, task)))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    finally:
        model.train(was_training)
    matrix = confusion.view(classes, classes).double()
    tp = matrix.diag()
    union = matrix.sum(0) + matrix.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))[1:]
    present = iou[~torch.isnan(iou)]
    pixels = matrix.sum()
    return {
        "miou": float(present.mean()) if model.pixel_level and len(present) else float("nan"),
        "pixel_accuracy": float(tp.sum() / pixels) if model.pixel_level and pixels > 0 else float("nan"),
        "image_accuracy": correct / total if total else float("nan"),
    }


def _logits_and_scores(model: SegmentationDetector, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel logits and the model's image score (its own head where it has one)."""
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


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------


def train_detector(
    model: SegmentationDetector,
    samples: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: TrainConfig,
    progress: bool = True,
    val_samples: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with its own objective (``model.loss``).

    AdamW; linear warm-up then poly or cosine decay; batches drawn epoch by epoch without
    replacement; random scale/crop, flips, blur and JPEG per ``cfg``. The batch size is
    ``min(cfg.batch_size, len(samples))`` and every batch is full, so a batch of one image never
    happens (smp's DeepLabv3+ fails on it in train mode). The model is trained on ``cfg.device``
    and returned to its previous train/eval mode (on that device).

    Args:
        model: a detector with 2 classes (binary task) or more than every label value (semantic).
        samples: (image (H, W, 3) uint8, label_map (H, W) uint8) pairs; a list is checked up
            front, a lazy Sequence sample by sample as it is decoded.
        cfg: the training configuration.
        progress: show a tqdm bar with the loss, images/s and learning rate (rank 0 only).
        val_samples: optional validation pairs (whole images, evaluated in eval mode) for the
            best checkpoint, ``restore_best`` and early stopping.
    Returns:
        {"steps": total steps done (including those before a resume), "loss": per-step losses,
         "seconds": wall time of this call, "images_per_second": float,
         "stopped_by": "steps" | "time_budget" | "early_stopping", "batch_size": images per
         micro-batch and process, "images_per_step", "world_size", "device", "amp",
         "resumed_from": step or None, "validation": [{"step", metrics...}],
         "best": {"step", "monitor", "score"} or None, "checkpoint_dir": str or None}
    Raises:
        ValueError: fewer than 2 samples, batch_size < 2, unknown task, wrong class count,
            malformed samples, differently sized images without ``crop_size``, bad settings,
            or a checkpoint to resume that belongs to another model or task.
        FloatingPointError: the loss became NaN or infinite.
    """
    _check_config(model, cfg)
    spawn = _spawn_count(cfg)
    if spawn:
        return _train_spawned(model, samples, cfg, progress, val_samples, spawn)
    _init_torchrun_group()
    distributed = dist.is_initialized() and dist.get_world_size() > 1
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    local_rank = int(os.environ.get("LOCAL_RANK", rank if distributed else 0))

    if len(samples) < 2:
        raise ValueError(f"need at least 2 training samples (no batch may hold a single image), got {len(samples)}")
    if isinstance(samples, (list, tuple)):
        _check_samples_up_front(model, samples, cfg)
    batch_size = min(cfg.batch_size, len(samples) // world)
    if batch_size < 2:
        raise ValueError(f"{len(samples)} samples over {world} processes leave fewer than 2 images per batch")

    device = _resolve_device(cfg, model, local_rank)
    model.to(device)
    _seed_everything(cfg.seed + rank, cfg.deterministic)
    amp_dtype = _amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"detector {model.config.get('name')!r} has no trainable parameters")
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    augmentation = Augmentation.from_settings(getattr(model, "train_augmentation", None), {"hflip": 0.5 if cfg.hflip else 0.0},
                                              cfg.augment)
    monitor = cfg.monitor if cfg.monitor != "auto" else ("miou" if model.pixel_level else "image_accuracy")

    folder = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    start_step, losses, validations, best = 0, [], [], None
    if folder is not None:
        if rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        resumed = _load_last(folder, model, optimizer, scaler, cfg) if cfg.resume else None
        if resumed is not None:
            start_step, losses, validations, best = resumed
            logger.info("resuming %s (%s) at step %d of %d from %s", model.config.get("name"), cfg.task, start_step, cfg.steps, folder)
        elif rank == 0:
            if cfg.resume:
                logger.info("resume requested but %s holds no checkpoint: starting at step 0", folder)
            _clear_checkpoints(folder)
    if distributed:
        dist.barrier()
    resumed_from = start_step if start_step else None

    stream = TrainingStream(samples, cfg.task, model.num_classes, cfg.crop_size, augmentation, cfg.seed)
    sampler = StepBatchSampler(len(samples), batch_size, cfg.seed, start=start_step * cfg.grad_accum_steps, rank=rank, world_size=world)
    workers = int(cfg.num_workers)
    loader = torch.utils.data.DataLoader(
        stream, batch_sampler=sampler, collate_fn=_collate, num_workers=workers,
        pin_memory=device.type == "cuda", worker_init_fn=_worker_init if workers else None,
        prefetch_factor=cfg.prefetch_batches if workers else None,
        multiprocessing_context=cfg.multiprocessing_context if workers else None,
        # Its own generator: creating the iterator must not draw from the global torch RNG, whose
        # state a resumed run restores from the checkpoint (dropout / drop-path use it).
        generator=torch.Generator().manual_seed(cfg.seed + rank),
    )
    objective = _Objective(model)
    wrapped: torch.nn.Module = objective
    if distributed:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )

    was_training = model.training
    model.train()
    images_per_step = batch_size * cfg.grad_accum_steps * world
    stopped_by = "steps"
    steps_this_run = 0
    stale_validations = 0
    start = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=start_step, disable=not progress or rank != 0,
               desc=f"train {model.config.get('name', 'detector')} ({cfg.task})")
    batches = iter(loader)
    try:
        for step in range(start_step, cfg.steps):
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(step, cfg)
            step_loss = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum_steps):
                images, targets, labels = next(batches)
                x = images.to(device, non_blocking=True).float().div_(255.0)
                y = targets.to(device, non_blocking=True).long()
                labels = labels.to(device, non_blocking=True)
                last_micro = micro == cfg.grad_accum_steps - 1
                sync = contextlib.nullcontext() if (last_micro or not distributed) else wrapped.no_sync()
                with sync:
                    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                        loss, _ = wrapped(x, y, labels)
                    scaler.scale(loss / cfg.grad_accum_steps).backward()
                step_loss += loss.detach() / cfg.grad_accum_steps
            if cfg.grad_clip_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

            if distributed:
                dist.all_reduce(step_loss, op=dist.ReduceOp.SUM)
                step_loss /= world
            loss_value = float(step_loss)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss became {loss_value} at step {step}")
            losses.append(loss_value)
            steps_this_run += 1
            done = step + 1
            elapsed = time.perf_counter() - start
            images_per_second = steps_this_run * images_per_step / elapsed if elapsed > 0 else float("nan")
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", img_s=f"{images_per_second:.1f}", lr=f"{cfg.lr * lr_factor(step, cfg):.2e}")
            if cfg.log_every and done % cfg.log_every == 0 and rank == 0:
                logger.info("step %d/%d loss %.4f (%.1f images/s)", done, cfg.steps, loss_value, images_per_second)

            stop = None
            if val_samples and cfg.val_every and done % cfg.val_every == 0 and done < cfg.steps:
                if rank == 0:
                    improved = _validation_round(model, val_samples, cfg, device, amp_dtype, monitor, done, validations, best, folder)
                    if improved is not None:
                        best, stale_validations = improved, 0
                    else:
                        stale_validations += 1
                    if cfg.early_stopping_patience is not None and stale_validations >= cfg.early_stopping_patience:
                        stop = "early_stopping"
            if rank == 0 and folder is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                _save_last(folder, done, model, optimizer, scaler, cfg, losses, validations, best)
            if stop is None and cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s and done < cfg.steps:
                stop = "time_budget"
            if distributed:
                stop = _agree(stop, device)
            if stop is not None:
                stopped_by = stop
                if rank == 0:
                    if stop == "time_budget":
                        logger.warning("time budget of %.1f s spent after %d of %d steps", cfg.time_budget_s, done, cfg.steps)
                    else:
                        logger.info("early stopping after %d steps: no %s improvement in %d validations", done, monitor, stale_validations)
                break
        total_steps = start_step + steps_this_run
        if rank == 0:
            if val_samples:
                improved = _validation_round(model, val_samples, cfg, device, amp_dtype, monitor, total_steps, validations, best, folder)
                if improved is not None:
                    best = improved
            if folder is not None:
                _save_last(folder, total_steps, model, optimizer, scaler, cfg, losses, validations, best)
        if cfg.restore_best and best is not None and folder is not None and best["step"] != total_steps:
            stem = checkpoint_path(folder, "best")
            if stem is not None:
                if distributed:
                    dist.barrier()
                model.load_state_dict(load_file(str(stem) + ".safetensors"), strict=True)
                logger.info("restored the best weights (%s %.4f at step %d)", best["monitor"], best["score"], best["step"])
        if distributed:
            dist.barrier()
    finally:
        bar.close()
        del batches
        model.train(was_training)

    seconds = time.perf_counter() - start
    return {
        "steps": start_step + steps_this_run,
        "loss": losses,
        "seconds": seconds,
        "images_per_second": steps_this_run * images_per_step / seconds if seconds > 0 else float("nan"),
        "stopped_by": stopped_by,
        "batch_size": batch_size,
        "images_per_step": images_per_step,
        "world_size": world,
        "device": str(device),
        "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off",
        "resumed_from": resumed_from,
        "validation": validations,
        "best": best,
        "checkpoint_dir": str(folder) if folder is not None else None,
    }


def _check_config(model: SegmentationDetector, cfg: TrainConfig) -> None:
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; known tasks: {', '.join(TASKS)}")
    if cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got {cfg.steps}")
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch of 1 breaks BatchNorm in train mode), got {cfg.batch_size}")
    if cfg.grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {cfg.grad_accum_steps}")
    if cfg.schedule not in ("poly", "cosine"):
        raise ValueError(f"schedule must be 'poly' or 'cosine', got {cfg.schedule!r}")
    if cfg.amp not in ("auto", "off", "bf16", "fp16"):
        raise ValueError(f"amp must be auto, off, bf16 or fp16, got {cfg.amp!r}")
    if cfg.monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {cfg.monitor!r}")
    if cfg.monitor in ("miou", "pixel_accuracy") and not model.pixel_level:
        raise ValueError(f"monitor {cfg.monitor!r} needs a pixel-level model; {model.config.get('name')!r} is an image classifier")
    if cfg.resume and not cfg.checkpoint_dir:
        raise ValueError("resume needs checkpoint_dir")
    if cfg.task == "binary" and model.num_classes != 2:
        raise ValueError(f"the binary task needs a 2-class detector, this one has {model.num_classes}")
    Augmentation.from_settings(cfg.augment)  # unknown or invalid settings fail before any work


def _check_samples_up_front(model: SegmentationDetector, samples: Sequence, cfg: TrainConfig) -> None:
    for i, (image, label_map) in enumerate(samples):
        _check_sample(i, image, label_map)
    max_label = max(int(np.max(label_map)) for _, label_map in samples)
    if cfg.task == "semantic" and max_label >= model.num_classes:
        raise ValueError(f"label value {max_label} needs at least {max_label + 1} classes; the detector has {model.num_classes}")
    if cfg.crop_size is None and len({image.shape for image, _ in samples}) > 1:
        raise ValueError("images differ in size: set crop_size to train on random crops")


def _seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _agree(stop: str | None, device: torch.device) -> str | None:
    """Rank 0's stop decision, broadcast so every process leaves the loop at the same step."""
    codes = {None: 0, "time_budget": 1, "early_stopping": 2}
    flag = torch.tensor([codes[stop]], device=device)
    dist.broadcast(flag, src=0)
    return {v: k for k, v in codes.items()}[int(flag.item())]


def _validation_round(model, val_samples, cfg, device, amp_dtype, monitor, step, validations, best, folder):
    """Validate, record, and save ``best-*`` when the monitored score improves. Returns the new
    best record, or None when it did not improve."""
    metrics = _validate(model, val_samples, cfg.task, device, amp_dtype, cfg.val_batch_size)
    validations.append({"step": step, **metrics})
    score = metrics[monitor]
    logger.info("validation at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if math.isnan(score) or (best is not None and score <= best["score"] + cfg.early_stopping_min_delta):
        return None
    record = {"step": step, "monitor": monitor, "score": score}
    if folder is not None:
        _save_step(folder, "best", step, model, {"task": cfg.task, "step": step, "metrics": metrics, "monitor": monitor,
                                                 "trainer": _json_safe(cfg.as_dict())})
    return record


def _save_last(folder, step, model, optimizer, scaler, cfg, losses, validations, best) -> None:
    extra = {"task": cfg.task, "step": step, "trainer": _json_safe(cfg.as_dict()),
             "history": {"loss": losses, "validation": validations, "best": best}}
    _save_step(folder, "last", step, model, extra, optimizer=optimizer, scaler_state=scaler.state_dict())


def _load_last(folder: Path, model, optimizer, scaler, cfg) -> tuple[int, list, list, dict | None] | None:
    stem = checkpoint_path(folder, "last")
    if stem is None:
        return None
    meta = json.loads(Path(str(stem) + ".json").read_text())
    extra = meta.get("extra", {})
    if meta.get("config") != model.config:
        raise ValueError(f"cannot resume from {stem}: it was written for detector config {meta.get('config')}, "
                         f"not {model.config}; use another checkpoint_dir or resume: false")
    if extra.get("task") != cfg.task:
        raise ValueError(f"cannot resume from {stem}: it trained the {extra.get('task')!r} task, not {cfg.task!r}")
    model.load_state_dict(load_file(str(stem) + ".safetensors"), strict=True)
    state_path = stem.parent / "train_state.safetensors"
    tensors = load_file(str(state_path))
    from safetensors import safe_open

    with safe_open(str(state_path), framework="pt") as reader:
        state_meta = json.loads((reader.metadata() or {})["meta"])
    _restore_optimizer(optimizer, tensors, state_meta["optimizer"])
    if state_meta.get("scaler"):
        scaler.load_state_dict(state_meta["scaler"])
    _restore_rng(tensors)
    history = extra.get("history", {})
    return int(extra["step"]), list(history.get("loss", [])), list(history.get("validation", [])), history.get("best")


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------------------------
# One process per device
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawned_worker(rank, world, port, state, config, samples, cfg_dict, progress, val_samples, result_dir):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world and cfg_dict.get("device") != "cpu"
    if use_cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    try:
        model = detector_from_state(state, config)
        cfg = TrainConfig(**{**cfg_dict, "distributed": "off", "device": f"cuda:{rank}" if use_cuda else "cpu"})
        history = train_detector(model, samples, cfg, progress=progress, val_samples=val_samples)
        if rank == 0:
            save_checkpoint(Path(result_dir) / "detector", model, extra={"history": _json_safe(history)})
    finally:
        dist.destroy_process_group()


def _train_spawned(model, samples, cfg, progress, val_samples, world) -> dict[str, Any]:
    """Run ``train_detector`` in ``world`` fresh processes (DDP, gloo on CPU / nccl on GPUs) and
    copy rank 0's result into ``model``. ``samples`` must be picklable."""
    import torch.multiprocessing as mp

    state, config = detector_state(model)
    logger.info("training %s on %d processes (torch.distributed)", config.get("name"), world)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="editlens-ddp-") as result_dir:
        mp.start_processes(_spawned_worker, nprocs=world, start_method="spawn", join=True,
                           args=(world, _free_port(), state, config, samples, cfg.as_dict(), progress, val_samples, result_dir))
        model.load_state_dict(load_file(str(Path(result_dir) / "detector.safetensors")), strict=True)
        history = json.loads((Path(result_dir) / "detector.json").read_text())["extra"]["history"]
    history["seconds_including_start"] = time.perf_counter() - start
    return history


# --------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------


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
            logits, image_scores = _logits_and_scores(model, x)
            probabilities.append(logits.softmax(dim=1).float().cpu().numpy())
            scores.append(image_scores.float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(probabilities).astype(np.float32, copy=False), np.concatenate(scores).astype(np.float32, copy=False)
