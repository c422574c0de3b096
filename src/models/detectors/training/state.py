"""Training state and its checkpoints: safetensors + JSON only, written atomically.

A checkpoint folder holds ``step-NNNNNNNN/`` (the newest ``last`` checkpoint: ``detector``
weights + JSON and ``train_state.safetensors`` with the optimizer, loss-scaler and RNG state;
``last.json`` points at it), ``best-NNNNNNNN/`` (best validation score; ``best.json``) and
``history.json`` (``TrainState.history()``: losses, validations, learning curve; no timings).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..base import SegmentationDetector
from ..checkpoint import save_checkpoint
from .config import TrainConfig

TRAIN_STATE_FORMAT = "editlens-train-state/1"
HISTORY_FORMAT = "editlens-train-history/1"


@dataclass
class TrainState:
    """What a run has done so far; saved with every ``last`` checkpoint and restored on resume.

    step: optimiser steps done (counting those before a resume).
    loss: one float per step done.
    validation: one record per validation, ``{"step", "miou", "pixel_accuracy", "image_accuracy"}``.
    best: ``{"step", "monitor", "score"}`` of the best validation, or None.
    resumed_from: the step a resumed run started at, or None.
    stopped_by: None while running; then "steps", "time_budget", "early_stopping" or a
        callback's own reason.
    stale_validations: validations in a row without a new best (not saved: a resumed run
        starts counting again).
    """

    step: int = 0
    loss: list[float] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    resumed_from: int | None = None
    stopped_by: str | None = None
    stale_validations: int = 0

    def learning_curve(self) -> dict[str, list[float]]:
        """Validation metrics against step: ``{"step": [...], "train_loss": [...], "miou": [...],
        "pixel_accuracy": [...], "image_accuracy": [...]}``, one entry per validation, where
        ``train_loss`` is the mean training loss over the steps since the previous validation."""
        curve: dict[str, list[float]] = {"step": [], "train_loss": []}
        previous = 0
        for record in self.validation:
            step = int(record["step"])
            window = self.loss[previous:step] or self.loss[max(0, step - 1):step]
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(window)) if window else float("nan"))
            for key, value in record.items():
                if key != "step":
                    curve.setdefault(key, []).append(value)
            previous = step
        return curve

    def history(self) -> dict[str, Any]:
        """The deterministic part of a run's history (no timings): the same seed and settings
        give the same dict, and ``history.json`` the same bytes."""
        return {"steps": self.step, "loss": self.loss, "validation": self.validation, "best": self.best,
                "learning_curve": self.learning_curve(), "stopped_by": self.stopped_by, "resumed_from": self.resumed_from}


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (anything else as its ``str``)."""
    return json.loads(json.dumps(value, default=str))


def save_last(folder: Path, model: SegmentationDetector, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              cfg: TrainConfig, state: TrainState) -> None:
    """Write the ``last`` checkpoint at ``state.step`` (weights, optimizer, scaler, RNG) and
    ``history.json``."""
    extra = {"task": cfg.task, "step": state.step, "trainer": json_safe(cfg.as_dict()),
             "history": {"loss": state.loss, "validation": state.validation, "best": state.best}}
    _save_step(folder, "last", state.step, model, extra, optimizer=optimizer, scaler_state=scaler.state_dict())
    _write_json_atomically(folder / "history.json", {"format": HISTORY_FORMAT, "task": cfg.task, **json_safe(state.history())})


def save_best(folder: Path, model: SegmentationDetector, cfg: TrainConfig, step: int, metrics: dict[str, float], monitor: str) -> None:
    """Write the ``best`` checkpoint (weights + its validation metrics) at ``step``."""
    _save_step(folder, "best", step, model, {"task": cfg.task, "step": step, "metrics": metrics, "monitor": monitor,
                                             "trainer": json_safe(cfg.as_dict())})


def load_last(folder: Path, model: SegmentationDetector, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              cfg: TrainConfig) -> TrainState | None:
    """Restore weights, optimizer, scaler and RNG from ``folder``'s ``last`` checkpoint into the
    given objects; returns its TrainState (``resumed_from`` set), or None when there is none.

    Raises:
        ValueError: the checkpoint was written for another detector config or task.
    """
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
    with safe_open(str(state_path), framework="pt") as reader:
        state_meta = json.loads((reader.metadata() or {})["meta"])
    _restore_optimizer(optimizer, tensors, state_meta["optimizer"])
    if state_meta.get("scaler"):
        scaler.load_state_dict(state_meta["scaler"])
    _restore_rng(tensors)
    history = extra.get("history", {})
    step = int(extra["step"])
    return TrainState(step=step, loss=list(history.get("loss", [])), validation=list(history.get("validation", [])),
                      best=history.get("best"), resumed_from=step)


def load_best_weights(folder: Path, model: SegmentationDetector) -> bool:
    """Load ``folder``'s best weights into ``model``; False when there is no best checkpoint."""
    stem = checkpoint_path(folder, "best")
    if stem is None:
        return False
    model.load_state_dict(load_file(str(stem) + ".safetensors"), strict=True)
    return True


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


def clear_checkpoints(folder: Path) -> None:
    """Remove every checkpoint, pointer and unfinished temporary folder of a previous run."""
    for pointer in ("last.json", "best.json", "history.json"):
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
