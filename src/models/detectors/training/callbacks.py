"""Trainer callbacks: everything a training run does besides the optimiser step.

The ``Trainer`` calls each hook on every callback in list order, on every process (look at
``trainer.processes.rank``); ``on_validation_end`` runs on rank 0, which alone validates. A
callback ends the run with ``trainer.request_stop(reason)``: the first reason wins, and under DDP
rank 0's decision is the one every process follows. The built-in list (``default_callbacks``) is
progress, validation, early stopping, checkpoints, time budget, in that order, so a step's
validation is in the checkpoint saved at that step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .config import lr_factor
from .state import load_best_weights, save_best, save_last
from .validation import validate

# ``Trainer`` in the annotations is ``trainer.Trainer``, not imported: trainer imports this module.
logger = logging.getLogger(__name__)


class Callback:
    """Base class: override the hooks you need (each gets the running ``Trainer``)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """After set-up and resume, before the first step (``trainer.state.step`` = start step)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After each optimiser step: ``trainer.state.step`` steps done, ``trainer.state.loss[-1]``
        its loss (averaged over processes)."""

    def on_validation_end(self, trainer: Trainer, record: dict[str, float], improved: bool) -> None:
        """Rank 0, after each validation: ``record`` = {"step", metrics...} (already appended to
        ``trainer.state.validation``); ``improved``: it is the new ``trainer.state.best``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last step (``trainer.state.stopped_by`` is set), before the history is built."""

    def teardown(self, trainer: Trainer) -> None:
        """Always, last, even after an error: release what the callback holds."""


class ProgressBar(Callback):
    """A tqdm bar (loss, images/s, learning rate) on rank 0, and a log line every ``cfg.log_every`` steps."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.bar = tqdm(total=trainer.cfg.steps, initial=trainer.state.step, disable=not self.enabled or trainer.processes.rank != 0,
                        desc=f"train {trainer.model.config.get('name', 'detector')} ({trainer.cfg.task})")

    def on_step_end(self, trainer: Trainer) -> None:
        cfg, state = trainer.cfg, trainer.state
        loss, rate = state.loss[-1], trainer.images_per_second()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.1f}", lr=f"{cfg.lr * lr_factor(state.step - 1, cfg):.2e}")
        if cfg.log_every and state.step % cfg.log_every == 0 and trainer.processes.rank == 0:
            logger.info("step %d/%d loss %.4f (%.1f images/s)", state.step, cfg.steps, loss, rate)

    def teardown(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class Validation(Callback):
    """Validate on ``samples`` every ``cfg.val_every`` steps and once at the end (unless the last
    step was just validated); keeps ``state.best`` (improving means beating it by more than
    ``cfg.early_stopping_min_delta``) and ``state.stale_validations``."""

    def __init__(self, samples: Sequence):
        self.samples = samples

    def on_step_end(self, trainer: Trainer) -> None:
        cfg, step = trainer.cfg, trainer.state.step
        if cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps and trainer.processes.rank == 0:
            self.run(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        done = trainer.state.validation and trainer.state.validation[-1]["step"] == trainer.state.step
        if trainer.processes.rank == 0 and not done:
            self.run(trainer)

    def run(self, trainer: Trainer) -> dict[str, Any]:
        """One validation at the current step; calls every callback's ``on_validation_end``."""
        cfg, state = trainer.cfg, trainer.state
        metrics = validate(trainer.model, self.samples, cfg.task, trainer.device, trainer.amp_dtype, cfg.val_batch_size)
        record = {"step": state.step, **metrics}
        state.validation.append(record)
        logger.info("validation at step %d: %s", state.step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        score = metrics[trainer.monitor]
        improved = not math.isnan(score) and (state.best is None or score > state.best["score"] + cfg.early_stopping_min_delta)
        if improved:
            state.best, state.stale_validations = {"step": state.step, "monitor": trainer.monitor, "score": score}, 0
        else:
            state.stale_validations += 1
        for callback in trainer.callbacks:
            callback.on_validation_end(trainer, record, improved)
        return record


class EarlyStopping(Callback):
    """Stop after ``patience`` validations in a row without a new best (periodic validations)."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_validation_end(self, trainer: Trainer, record: dict[str, float], improved: bool) -> None:
        state = trainer.state
        if state.stale_validations >= self.patience and state.step < trainer.cfg.steps and state.stopped_by is None:
            logger.info("early stopping after %d steps: no %s improvement in %d validations", state.step, trainer.monitor,
                        state.stale_validations)
            trainer.request_stop("early_stopping")


class Checkpointer(Callback):
    """``last`` checkpoints every ``cfg.checkpoint_every`` steps and at the end (with
    ``history.json``), ``best`` on each new best validation, and the best weights back into the
    model at the end when ``cfg.restore_best``. Rank 0 writes."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _save_last(self, trainer: Trainer) -> None:
        save_last(self.folder, trainer.model, trainer.optimizer, trainer.scaler, trainer.cfg, trainer.state)

    def on_step_end(self, trainer: Trainer) -> None:
        cfg, step = trainer.cfg, trainer.state.step
        if trainer.processes.rank == 0 and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            self._save_last(trainer)

    def on_validation_end(self, trainer: Trainer, record: dict[str, float], improved: bool) -> None:
        if improved:
            metrics = {k: v for k, v in record.items() if k != "step"}
            save_best(self.folder, trainer.model, trainer.cfg, trainer.state.step, metrics, trainer.monitor)

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.processes.rank != 0:
            return
        self._save_last(trainer)
        best = trainer.state.best
        if trainer.cfg.restore_best and best is not None and best["step"] != trainer.state.step:
            if load_best_weights(self.folder, trainer.model):
                logger.info("restored the best weights (%s %.4f at step %d)", best["monitor"], best["score"], best["step"])


class TimeBudget(Callback):
    """Stop after the step during which ``seconds`` of wall time (since this call started) passed."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step_end(self, trainer: Trainer) -> None:
        step = trainer.state.step
        if trainer.processes.rank == 0 and trainer.stop_reason is None and trainer.elapsed() >= self.seconds and step < trainer.cfg.steps:
            logger.warning("time budget of %.1f s spent after %d of %d steps", self.seconds, step, trainer.cfg.steps)
            trainer.request_stop("time_budget")


def default_callbacks(trainer: Trainer, val_samples: Sequence | None, progress: bool) -> list[Callback]:
    """The callbacks ``trainer.cfg`` asks for, in the order they must run."""
    cfg = trainer.cfg
    callbacks: list[Callback] = [ProgressBar(progress)]
    if val_samples:
        callbacks.append(Validation(val_samples))
        if cfg.early_stopping_patience is not None:
            callbacks.append(EarlyStopping(cfg.early_stopping_patience))
    if cfg.checkpoint_dir:
        callbacks.append(Checkpointer(cfg.checkpoint_dir))
    if cfg.time_budget_s is not None:
        callbacks.append(TimeBudget(cfg.time_budget_s))
    return callbacks
