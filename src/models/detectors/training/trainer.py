"""The Trainer: the optimiser loop of every detector of the registry, everything else in callbacks.

``Trainer(model, cfg).fit(samples, val_samples)`` sets up (device, precision, processes, data,
resume), runs ``cfg.steps`` optimiser steps of the model's own objective (``model.loss``) and
calls its callbacks (``callbacks.py``: progress, validation, early stopping, checkpoints, time
budget, then any the caller adds). ``train_detector`` is the one-call form the pipelines use.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment import Augmentation
from ..base import SegmentationDetector
from . import distributed as dd
from .callbacks import Callback, default_callbacks
from .config import TrainConfig, build_optimizer, check_config, lr_factor, monitor_for
from .data import check_samples_up_front, training_loader
from .state import TrainState, clear_checkpoints, load_last

logger = logging.getLogger(__name__)


class Trainer:
    """Trains one detector in place with ``cfg`` (see ``TrainConfig``).

    AdamW (or Adam / SGD, ``TrainConfig.optimizer``); linear warm-up then poly or cosine decay; batches drawn epoch by epoch without
    replacement; random scale/crop, flips, blur and JPEG per ``cfg``. The batch size is
    ``min(cfg.batch_size, len(samples) // processes)`` and every batch is full, so a batch of one
    image never happens (smp's DeepLabv3+ fails on it in train mode). The model is trained on
    ``cfg.device`` and returned to its previous train/eval mode (on that device).

    Attributes callbacks may read: ``model``, ``cfg``, ``state`` (``TrainState``), ``processes``,
    ``device``, ``amp_dtype``, ``monitor``, ``optimizer``, ``scaler``, ``callbacks``.

    Raises (from ``__init__``): ValueError for settings the model cannot train with.
    """

    def __init__(self, model: SegmentationDetector, cfg: TrainConfig, callbacks: Sequence[Callback] = (), progress: bool = True):
        check_config(model, cfg)
        self.model, self.cfg, self.progress = model, cfg, progress
        self.extra_callbacks = list(callbacks)
        self.callbacks: list[Callback] = []
        self.state = TrainState()
        self.processes = dd.Processes()
        self.stop_reason: str | None = None
        self._started = time.perf_counter()
        self._steps_this_run = 0

    # ---- what callbacks call ----------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """End the run after this step (the first reason asked for is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def elapsed(self) -> float:
        """Seconds since the loop of this call started."""
        return time.perf_counter() - self._started

    def images_per_second(self) -> float:
        elapsed = self.elapsed()
        return self._steps_this_run * self.images_per_step / elapsed if elapsed > 0 else float("nan")

    # ---- the run ----------------------------------------------------------------------------

    def fit(self, samples: Sequence[tuple[np.ndarray, np.ndarray]],
            val_samples: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[str, Any]:
        """Train on ``samples``; validate on ``val_samples`` (whole images, eval mode) when given.

        Args:
            samples: (image (H, W, 3) uint8, label_map (H, W) uint8) pairs; a list is checked up
                front, a lazy Sequence sample by sample as it is decoded.
            val_samples: optional validation pairs for the learning curve, the best checkpoint,
                ``restore_best`` and early stopping.
        Returns:
            ``TrainState.history()`` ({"steps", "loss", "validation", "best", "learning_curve",
            "stopped_by": "steps" | "time_budget" | "early_stopping" | a callback's reason,
            "resumed_from"}) plus {"seconds", "images_per_second", "batch_size" (images per
            micro-batch and process), "images_per_step", "world_size", "device", "amp",
            "checkpoint_dir"}.
        Raises:
            ValueError: fewer than 2 samples, malformed samples, labels beyond the model's
                classes, differently sized images without ``crop_size``, or a checkpoint to resume
                that belongs to another model or task.
            FloatingPointError: the loss became NaN or infinite.
        """
        spawn = dd.spawn_count(self.cfg)
        if spawn:
            return dd.train_spawned(train_detector, self.model, samples, self.cfg, world=spawn, progress=self.progress,
                                    val_samples=val_samples, callbacks=self.extra_callbacks)
        self.processes = dd.Processes.join()
        batches = iter(self._set_up(samples, val_samples))
        was_training = self.model.training
        self.model.train()
        self._started = time.perf_counter()
        try:
            for callback in self.callbacks:
                callback.on_fit_start(self)
            self._loop(batches)
            for callback in self.callbacks:
                callback.on_fit_end(self)
            self.processes.barrier()
        finally:
            for callback in self.callbacks:
                callback.teardown(self)
            del batches
            self.model.train(was_training)
        return self._history()

    def _set_up(self, samples: Sequence, val_samples: Sequence | None) -> torch.utils.data.DataLoader:
        cfg, model, processes = self.cfg, self.model, self.processes
        if len(samples) < 2:
            raise ValueError(f"need at least 2 training samples (no batch may hold a single image), got {len(samples)}")
        if isinstance(samples, (list, tuple)):
            check_samples_up_front(model, samples, cfg)
        self.batch_size = min(cfg.batch_size, len(samples) // processes.world)
        if self.batch_size < 2:
            raise ValueError(f"{len(samples)} samples over {processes.world} processes leave fewer than 2 images per batch")
        self.images_per_step = self.batch_size * cfg.grad_accum_steps * processes.world

        self.device = dd.resolve_device(cfg, model, processes.local_rank)
        model.to(self.device)
        dd.seed_everything(cfg.seed + processes.rank, cfg.deterministic)
        self.amp_dtype = dd.amp_dtype(cfg.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.optimizer = build_optimizer(model, cfg)
        self.trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.monitor = monitor_for(model, cfg)
        self.state = self._resume_or_start()
        processes.barrier()

        augmentation = Augmentation.from_settings(getattr(model, "train_augmentation", None), {"hflip": 0.5 if cfg.hflip else 0.0},
                                                  cfg.augment)
        loader = training_loader(samples, cfg, augmentation, num_classes=model.num_classes, batch_size=self.batch_size,
                                 start_micro_batch=self.state.step * cfg.grad_accum_steps, rank=processes.rank,
                                 world_size=processes.world, pin_memory=self.device.type == "cuda")
        self.wrapped = dd.wrap(dd.Objective(model), processes, self.device, cfg)
        self.callbacks = default_callbacks(self, val_samples, self.progress) + self.extra_callbacks
        return loader

    def _resume_or_start(self) -> TrainState:
        """The state to start from: the last checkpoint's when resuming and there is one (weights,
        optimizer and RNG restored); otherwise a fresh state (old checkpoints cleared)."""
        cfg = self.cfg
        if not cfg.checkpoint_dir:
            return TrainState()
        folder = Path(cfg.checkpoint_dir)
        if self.processes.rank == 0:
            folder.mkdir(parents=True, exist_ok=True)
        resumed = load_last(folder, self.model, self.optimizer, self.scaler, cfg) if cfg.resume else None
        if resumed is not None:
            logger.info("resuming %s (%s) at step %d of %d from %s", self.model.config.get("name"), cfg.task, resumed.step,
                        cfg.steps, folder)
            return resumed
        if self.processes.rank == 0:
            if cfg.resume:
                logger.info("resume requested but %s holds no checkpoint: starting at step 0", folder)
            clear_checkpoints(folder)
        return TrainState()

    def _loop(self, batches) -> None:
        cfg, state = self.cfg, self.state
        stop = None
        while state.step < cfg.steps and stop is None:
            loss = self._step(batches, state.step)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {state.step}")
            state.loss.append(loss)
            state.step += 1
            self._steps_this_run += 1
            for callback in self.callbacks:
                callback.on_step_end(self)
            stop = self.processes.agree(self.stop_reason, self.device)
        state.stopped_by = stop or "steps"

    def _step(self, batches, step: int) -> float:
        """One optimiser step (``cfg.grad_accum_steps`` micro-batches); its mean loss over processes."""
        cfg, device = self.cfg, self.device
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg) * group.get("lr_scale", 1.0)
        step_loss = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum_steps):
            images, targets, labels = next(batches)
            x = images.to(device, non_blocking=True).float().div_(255.0)
            y = targets.to(device, non_blocking=True).long()
            labels = labels.to(device, non_blocking=True)
            with dd.no_sync(self.wrapped, micro == cfg.grad_accum_steps - 1):
                with dd.autocast(device, self.amp_dtype):
                    loss, _ = self.wrapped(x, y, labels)
                self.scaler.scale(loss / cfg.grad_accum_steps).backward()
            step_loss += loss.detach() / cfg.grad_accum_steps
        if cfg.grad_clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(self.processes.mean(step_loss))

    def _history(self) -> dict[str, Any]:
        seconds = self.elapsed()
        return {
            **self.state.history(),
            "seconds": seconds,
            "images_per_second": self._steps_this_run * self.images_per_step / seconds if seconds > 0 else float("nan"),
            "batch_size": self.batch_size,
            "images_per_step": self.images_per_step,
            "world_size": self.processes.world,
            "device": str(self.device),
            "amp": str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
            "checkpoint_dir": str(Path(self.cfg.checkpoint_dir)) if self.cfg.checkpoint_dir else None,
        }


def train_detector(model: SegmentationDetector, samples: Sequence[tuple[np.ndarray, np.ndarray]], cfg: TrainConfig,
                   progress: bool = True, val_samples: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
                   callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """``Trainer(model, cfg, callbacks, progress).fit(samples, val_samples)``: train ``model`` in
    place; see ``Trainer.fit`` for the arguments, the returned history and what it raises.
    ``progress`` shows a tqdm bar with the loss, images/s and learning rate (rank 0 only)."""
    return Trainer(model, cfg, callbacks=callbacks, progress=progress).fit(samples, val_samples)
