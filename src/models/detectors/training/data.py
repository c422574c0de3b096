"""Training data: task targets, sample checks, and the keyed, step-indexed batch stream.

Reproducibility: the images of micro-batch m are fixed by (seed, m) (an epoch-wise permutation)
and each sample's augmentation by (seed, m, slot), whatever process decodes it, so a resumed run
sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..augment import Augmentation, augment_sample
from ..base import IGNORE_INDEX, SegmentationDetector
from .config import TASKS, TrainConfig


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


def check_sample(index: int, image: np.ndarray, label_map: np.ndarray) -> None:
    """Raise ValueError naming sample ``index`` unless image is (H, W, 3) uint8 and label_map (H, W)."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample {index}: image must be (H, W, 3) uint8, got {np.shape(image)} {getattr(image, 'dtype', type(image))}")
    if np.shape(label_map) != image.shape[:2]:
        raise ValueError(f"sample {index}: label_map shape {np.shape(label_map)} != image size {image.shape[:2]}")


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
        check_sample(index, image, label_map)
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


def check_samples_up_front(model: SegmentationDetector, samples: Sequence, cfg: TrainConfig) -> None:
    """Check every decoded sample before training: shapes, label values within the model's classes,
    one image size unless ``cfg.crop_size``. Raises ValueError."""
    for i, (image, label_map) in enumerate(samples):
        check_sample(i, image, label_map)
    max_label = max(int(np.max(label_map)) for _, label_map in samples)
    if cfg.task == "semantic" and max_label >= model.num_classes:
        raise ValueError(f"label value {max_label} needs at least {max_label + 1} classes; the detector has {model.num_classes}")
    if cfg.crop_size is None and len({image.shape for image, _ in samples}) > 1:
        raise ValueError("images differ in size: set crop_size to train on random crops")


def training_loader(samples: Sequence, cfg: TrainConfig, augmentation: Augmentation, *, num_classes: int, batch_size: int,
                    start_micro_batch: int, rank: int, world_size: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """The endless DataLoader of this process's micro-batches from ``start_micro_batch`` on:
    (images uint8 (B, 3, S, S), targets int16 (B, S, S), image labels int64 (B,))."""
    stream = TrainingStream(samples, cfg.task, num_classes, cfg.crop_size, augmentation, cfg.seed)
    sampler = StepBatchSampler(len(samples), batch_size, cfg.seed, start=start_micro_batch, rank=rank, world_size=world_size)
    workers = int(cfg.num_workers)
    return torch.utils.data.DataLoader(
        stream, batch_sampler=sampler, collate_fn=_collate, num_workers=workers, pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=cfg.prefetch_batches if workers else None,
        multiprocessing_context=cfg.multiprocessing_context if workers else None,
        # Its own generator: creating the iterator must not draw from the global torch RNG, whose
        # state a resumed run restores from the checkpoint (dropout / drop-path use it).
        generator=torch.Generator().manual_seed(cfg.seed + rank),
    )
