"""Training for every detector of the registry, on in-memory or lazily decoded samples.

A sample is ``(image, label_map)``: image (H, W, 3) uint8 RGB, label_map (H, W) uint8 with
0 = untouched and k = edited by generator k (a pixel edited twice carries the later edit).
``targets_for_task`` turns a label map into the target of a task: "binary" (edited or not, 2
classes) or "semantic" (the label map itself, 1 + number of generators classes).

``samples`` may be a list of decoded pairs or any ``Sequence`` whose ``__getitem__`` decodes on
demand (``pipelines.train`` passes one over the catalog's loaders): with ``num_workers > 0`` the
decoding and augmentation then happen in DataLoader worker processes, off the training loop.

Modules:

- ``config``: ``TrainConfig``, its checks, the learning-rate schedule;
- ``data``: targets, sample checks, the keyed step-indexed batch stream (exact resume);
- ``state``: ``TrainState`` (losses, validations, best, learning curve) and its safetensors +
  JSON checkpoints, ``history.json``;
- ``distributed``: device, mixed precision, DDP (torchrun or spawned processes);
- ``validation``: scores with ``models.metrics.ConfusionMatrix``;
- ``callbacks``: progress, validation, early stopping, checkpoints, time budget;
- ``trainer``: ``Trainer`` (the optimiser loop) and ``train_detector``.

Inference (``predict``) lives in ``models.detectors.inference``; it is re-exported here for
older callers.

Why not ``accelerate`` (1.15, measured 2026-12 on this project's CPU machine): its per-step
overhead is small (about 1 ms a step on a tiny model against 1-10 s for a real step), but
``Accelerator.save_state`` writes the optimizer and RNG state with pickle (``optimizer.bin``,
``random_states_0.pkl``), which the safetensors-only checkpoints exclude; its process-wide
``AcceleratorState`` refuses a second ``Accelerator`` with another mixed precision in the same
process (the train pipeline trains two tasks in one process; tests train many configurations)
unless a private ``_reset_state`` is called; and its prepared DataLoader re-shards batches,
which the step-indexed sampler (exact resume, rank sharding) already does. What it would
replace here (autocast / GradScaler / DDP wrapping / torchrun join) is about 50 lines of
``distributed.py``.
"""

from ..base import IGNORE_INDEX
from ..inference import image_score_definition, predict
from .callbacks import Callback, Checkpointer, EarlyStopping, ProgressBar, TimeBudget, Validation
from .config import MONITORS, OPTIMIZERS, TASKS, TrainConfig, build_optimizer, lr_factor
from .data import StepBatchSampler, TrainingStream, _collate, _worker_init, dominant_class, targets_for_task
from .distributed import Objective as _Objective
from .state import TrainState, checkpoint_path
from .trainer import Trainer, train_detector
from .validation import validate

__all__ = [
    "IGNORE_INDEX",
    "MONITORS",
    "TASKS",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "ProgressBar",
    "StepBatchSampler",
    "TimeBudget",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TrainingStream",
    "Validation",
    "_Objective",
    "_collate",
    "_worker_init",
    "checkpoint_path",
    "dominant_class",
    "image_score_definition",
    "lr_factor",
    "build_optimizer",
    "OPTIMIZERS",
    "predict",
    "targets_for_task",
    "train_detector",
    "validate",
]
