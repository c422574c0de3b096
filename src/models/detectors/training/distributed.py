"""Where and how a training step runs: device, mixed precision, and processes (DDP).

torch's own pieces, kept thin: ``torch.autocast`` + ``GradScaler`` for mixed precision,
``DistributedDataParallel`` over the model and its loss, a process group joined from torchrun's
environment or spawned here (gloo on CPU, nccl on GPUs). ``accelerate`` was measured as the
replacement (docs in ``training/__init__``): its saved state is pickle, not safetensors, and its
process-wide state cannot change precision between two runs in one process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from ..base import SegmentationDetector
from ..checkpoint import detector_from_state, detector_state, save_checkpoint
from .config import TrainConfig
from .state import json_safe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: rank and world size (1 and rank 0 without DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def join(cls) -> Processes:
        """Join torchrun's process group when the environment describes one; this process's place."""
        _init_torchrun_group()
        if not (dist.is_initialized() and dist.get_world_size() > 1):
            return cls()
        rank = dist.get_rank()
        return cls(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", rank)))

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over processes (in place)."""
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world
        return value

    def agree(self, stop: str | None, device: torch.device) -> str | None:
        """Rank 0's stop decision on every process, so all leave the loop at the same step; any
        reason string travels (callbacks may name their own)."""
        if not self.distributed:
            return stop
        box = [stop]
        dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
        return box[0]


def wrap(objective: torch.nn.Module, processes: Processes, device: torch.device, cfg: TrainConfig) -> torch.nn.Module:
    """``objective`` in DistributedDataParallel when several processes train, else itself."""
    if not processes.distributed:
        return objective
    return torch.nn.parallel.DistributedDataParallel(
        objective, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=cfg.find_unused_parameters,
    )


def no_sync(wrapped: torch.nn.Module, last_micro_batch: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync`` on every micro-batch but the last of a step (gradients are reduced once)."""
    if last_micro_batch or not isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return wrapped.no_sync()


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` at ``amp_dtype``, or nothing in float32."""
    return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` on ``device``: None (float32) off CUDA or when "off"."""
    if amp == "off" or device.type != "cuda":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            logger.info("amp=%s requested on %s: training in float32", amp, device)
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def resolve_device(cfg: TrainConfig, model: torch.nn.Module, local_rank: int) -> torch.device:
    """The device to train on: see ``TrainConfig.device``."""
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


def spawn_count(cfg: TrainConfig) -> int:
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


class Objective(torch.nn.Module):
    """model + its loss as one module, so DistributedDataParallel wraps the whole step."""

    def __init__(self, model: SegmentationDetector):
        super().__init__()
        self.model = model

    def forward(self, x, target, image_label):
        outputs = self.model(x, return_outputs=True)
        return self.model.loss(outputs, target, image_label)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch, numpy and python; ``deterministic`` asks torch for deterministic kernels."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawned_worker(rank, world, port, train, state, config, samples, cfg_dict, progress, val_samples, callbacks, result_dir):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world and cfg_dict.get("device") != "cpu"
    if use_cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    try:
        model = detector_from_state(state, config)
        cfg = TrainConfig(**{**cfg_dict, "distributed": "off", "device": f"cuda:{rank}" if use_cuda else "cpu"})
        history = train(model, samples, cfg, progress=progress, val_samples=val_samples, callbacks=callbacks)
        if rank == 0:
            save_checkpoint(Path(result_dir) / "detector", model, extra={"history": json_safe(history)})
    finally:
        dist.destroy_process_group()


def train_spawned(train: Callable[..., dict[str, Any]], model: SegmentationDetector, samples: Sequence, cfg: TrainConfig, *,
                  world: int, progress: bool, val_samples: Sequence | None, callbacks: Sequence | None) -> dict[str, Any]:
    """Run ``train`` (``train_detector``) in ``world`` fresh processes (DDP, gloo on CPU / nccl on
    GPUs) and copy rank 0's weights into ``model``; rank 0's history is returned. ``samples``,
    ``val_samples`` and ``callbacks`` must be picklable (callbacks run in the children)."""
    import torch.multiprocessing as mp

    state, config = detector_state(model)
    logger.info("training %s on %d processes (torch.distributed)", config.get("name"), world)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="editlens-ddp-") as result_dir:
        args = (world, _free_port(), train, state, config, samples, cfg.as_dict(), progress, val_samples, callbacks, result_dir)
        mp.start_processes(_spawned_worker, nprocs=world, start_method="spawn", join=True, args=args)
        model.load_state_dict(load_file(str(Path(result_dir) / "detector.safetensors")), strict=True)
        history = json.loads((Path(result_dir) / "detector.json").read_text())["extra"]["history"]
    history["seconds_including_start"] = time.perf_counter() - start
    return history
