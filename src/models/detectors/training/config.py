"""How to train a detector: ``TrainConfig``, its checks, and the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..augment import Augmentation
from ..base import SegmentationDetector

TASKS = ("binary", "semantic")
MONITORS = ("auto", "miou", "pixel_accuracy", "image_accuracy")


@dataclass
class TrainConfig:
    """How to train a detector (see ``Trainer`` / ``train_detector``). Every field but ``task`` and ``steps``
    has a default, so ``TrainConfig(task=..., steps=..., **params)`` works from a params dict.

    task: "binary" (edited vs untouched, the model must have 2 classes) or "semantic"
        (which generator edited each pixel).
    steps: optimiser steps (in total, counting the steps before a resume). Training stops after
        exactly this many unless ``time_budget_s`` or early stopping ends it first.
    batch_size: images per micro-batch and process (>= 2: DeepLabv3+ cannot train on a batch
        of 1). Images per optimiser step = batch_size x grad_accum_steps x processes.
    grad_accum_steps: micro-batches whose gradients are summed before each optimiser step.
    lr, weight_decay: the optimiser's learning rate and weight decay (decoupled for AdamW, L2 for
        Adam and SGD, as torch implements them).
    optimizer: "adamw" (default), "adam" or "sgd" (momentum ``momentum``, DeepLabV3Plus-Pytorch's
        and pytorch-fcn's choice).
    momentum: SGD momentum.
    encoder_lr_ratio: the encoder's learning rate is this times ``lr`` (DeepLabV3Plus-Pytorch: 0.1
        for the ImageNet backbone); 1.0 keeps one parameter group.
    warmup_steps: linear warm-up length; afterwards ``schedule`` decays to ``min_lr_ratio`` x lr.
    schedule: "poly" ((1 - progress) ** poly_power, DeepLab's) or "cosine".
    seed: seeds torch, numpy and python, the batch order and every augmentation.
    time_budget_s: optional wall-clock limit: stop after the step during which this many seconds
        have passed. None (the default): no limit, so the run is a function of the seed alone.
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
        (best validation score; ``best.json``), and ``history.json`` (losses, validations and the
        learning curve, no timings: same seed, same bytes). None: no checkpoints.
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
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    momentum: float = 0.9
    encoder_lr_ratio: float = 1.0
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


OPTIMIZERS = ("adamw", "adam", "sgd")


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model``'s trainable parameters. With ``encoder_lr_ratio != 1`` the
    encoder's parameters (``network.encoder.*``, the registry's segmenters) form a second group
    whose ``lr_scale`` is that ratio; the schedule sets every group's lr to
    ``cfg.lr * lr_factor(step) * lr_scale``.

    Raises:
        ValueError: no trainable parameter; a ratio != 1 on a model without an encoder.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"detector {getattr(model, 'config', {}).get('name')!r} has no trainable parameters")
    if cfg.encoder_lr_ratio == 1.0:
        groups = [{"params": [p for _, p in named], "lr_scale": 1.0}]
    else:
        encoder = [p for name, p in named if name.startswith("network.encoder.") or name.startswith("encoder.")]
        if not encoder:
            raise ValueError(f"encoder_lr_ratio {cfg.encoder_lr_ratio} needs a model with an encoder "
                             f"(parameters network.encoder.*); {getattr(model, 'config', {}).get('name')!r} has none")
        ids = {id(p) for p in encoder}
        groups = [{"params": encoder, "lr_scale": float(cfg.encoder_lr_ratio)},
                  {"params": [p for _, p in named if id(p) not in ids], "lr_scale": 1.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


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


def check_config(model: SegmentationDetector, cfg: TrainConfig) -> None:
    """Raise ValueError naming the first setting of ``cfg`` that ``model`` cannot train with."""
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; known tasks: {', '.join(TASKS)}")
    if cfg.steps < 1:
        raise ValueError(f"steps must be >= 1, got {cfg.steps}")
    if cfg.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch of 1 breaks BatchNorm in train mode), got {cfg.batch_size}")
    if cfg.grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {cfg.grad_accum_steps}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {cfg.momentum}")
    if cfg.encoder_lr_ratio <= 0:
        raise ValueError(f"encoder_lr_ratio must be > 0, got {cfg.encoder_lr_ratio}")
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


def monitor_for(model: SegmentationDetector, cfg: TrainConfig) -> str:
    """The validation score that ranks checkpoints: ``cfg.monitor``, or for "auto" mIoU on
    pixel-level models and image accuracy on image classifiers."""
    if cfg.monitor != "auto":
        return cfg.monitor
    return "miou" if model.pixel_level else "image_accuracy"
