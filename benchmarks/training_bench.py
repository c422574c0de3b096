"""Training-side benchmarks.

- Data loading: the trainer's loader (``TrainingStream`` + ``StepBatchSampler`` + its collate in a
  DataLoader with 2 workers: PNG decode through ``PNGDataset`` + augmentation: flips, random crop)
  vs raw PNG decode of the same files in one process (cv2.imdecode of image and label map).
  Reported as images/s of the loader / images/s of raw decode (target >= 0.9).
- Trainer step: ``train_detector`` (DeepLabV3+ ResNet-18, binary, batch 4 at 256 px, augmentation
  off, in-process data) vs a bare segmentation_models_pytorch step (same architecture, AdamW,
  cross-entropy) on one fixed batch. The trainer's per-step time is the difference between two
  runs of different length (set-up cancels). Target <= 1.10x.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
import torch

from benchmarks.common import timed


def _write_pngs(folder: Path, n: int, size: int) -> list[tuple[Path, Path]]:
    photo = cv2.resize(skimage.data.astronaut(), (size * 2, size * 2))
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(n):
        y, x = rng.integers(0, size, 2)
        image = np.ascontiguousarray(photo[y:y + size, x:x + size])
        label = np.zeros((size, size), np.uint8)
        label[size // 4: size // 2, size // 4: size // 2] = 1 + i % 3
        paths = (folder / f"{i}.png", folder / f"{i}-label.png")
        cv2.imwrite(str(paths[0]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        cv2.imwrite(str(paths[1]), label, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        pairs.append(paths)
    return pairs


class PNGPairs:
    """(image, label map) decoded on access through the catalog's PNG dataset, as SplitSamples does."""

    def __init__(self, pairs: list[tuple[Path, Path]]):
        self.pairs = [(str(a), str(b)) for a, b in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from pipelines.datasets import PNGDataset

        image, label = self.pairs[index]
        return PNGDataset(filepath=image, mode="RGB").load(), PNGDataset(filepath=label, mode="L").load()


def loading(n: int = 512, size: int = 256, batch: int = 8, workers: int = 2) -> dict[str, Any]:
    from models.detectors.augment import Augmentation
    from models.detectors.training import StepBatchSampler, TrainingStream, _collate, _worker_init

    with tempfile.TemporaryDirectory(prefix="editlens-bench-load-") as tmp:
        pairs = _write_pngs(Path(tmp), n, size)

        def raw() -> int:
            for image, label in pairs:
                a = cv2.imdecode(np.frombuffer(image.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
                b = cv2.imdecode(np.frombuffer(label.read_bytes(), np.uint8), cv2.IMREAD_GRAYSCALE)
                assert a is not None and b is not None
            return len(pairs)

        stream = TrainingStream(PNGPairs(pairs), "binary", 2, size - 32, Augmentation(hflip=0.5), seed=0)
        steps = n // batch

        def loader() -> tuple[float, int]:
            """Steady-state rate: the clock starts once each worker has delivered a batch."""
            sampler = StepBatchSampler(n, batch, seed=0)
            data = torch.utils.data.DataLoader(stream, batch_sampler=sampler, collate_fn=_collate, num_workers=workers,
                                               worker_init_fn=_worker_init, prefetch_factor=2)
            seen, start = 0, None
            for i, (images, _, _) in enumerate(data):
                if i + 1 == workers:
                    start = time.perf_counter()
                elif start is not None:
                    seen += len(images)
                if i + 1 == steps + workers:
                    break
            return time.perf_counter() - start, seen

        raw()  # warm the page cache
        raw_s, raw_n = timed(raw)
        loader_s, loader_n = loader()
    raw_rate, loader_rate = raw_n / raw_s, loader_n / loader_s
    return {"images": n, "size": size, "workers": workers, "raw_decode_img_s": raw_rate,
            "loader_img_s": loader_rate, "ratio": loader_rate / raw_rate, "target": ">= 0.9"}


def trainer_step(size: int = 256, batch: int = 4, steps: int = 8) -> dict[str, Any]:
    import segmentation_models_pytorch as smp

    from models.detectors import create_detector
    from models.detectors.training import TrainConfig, train_detector

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = np.zeros((batch, size, size), np.uint8)
    labels[:, size // 4: size // 2, size // 4: size // 2] = 1
    samples = list(zip(images, labels))
    off = {"hflip": 0.0, "vflip": 0.0, "resize_prob": 0.0, "blur_prob": 0.0, "jpeg_prob": 0.0}

    torch.manual_seed(0)
    bare_model = smp.DeepLabV3Plus(encoder_name="resnet18", encoder_weights=None, classes=2).train()
    bare_optimizer = torch.optim.AdamW(bare_model.parameters(), lr=3e-4, weight_decay=1e-4)

    def bare_step() -> float:
        start = time.perf_counter()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        y = torch.from_numpy(labels).long()
        loss = torch.nn.functional.cross_entropy(bare_model(x), y)
        loss.backward()
        bare_optimizer.step()
        bare_optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    # Paired, step by step (the machine's load drifts within seconds): a pre-forward hook on the
    # trainer's model stamps each training step and runs one bare step right there. The gap
    # between two stamps is one trainer step + one bare step; the bare step's own time is known.
    torch.manual_seed(0)
    model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18")
    stamps: list[float] = []
    bare_times: list[float] = []

    def hook(*_: Any) -> None:
        if model.training:
            bare_times.append(bare_step())
            stamps.append(time.perf_counter())
    model.register_forward_pre_hook(hook)
    cfg = TrainConfig(task="binary", steps=steps + 2, batch_size=batch, warmup_steps=1, augment=off, hflip=False,
                      log_every=0, amp="off")
    train_detector(model, samples, cfg, progress=False)
    # gap k = trainer step k + bare step k+1; the first two steps allocate (dropped)
    trainer = [gap - bare for gap, bare in zip(np.diff(stamps), bare_times[1:])][2:]
    bare = bare_times[3:]
    ratios = [t / b for t, b in zip(trainer, bare)]
    return {"batch": batch, "size": size, "trainer_s_per_step": float(np.median(trainer)),
            "bare_smp_s_per_step": float(np.median(bare)), "ratio": float(np.median(ratios)),
            "ratios": [round(r, 3) for r in ratios], "target": "<= 1.10", "threads": torch.get_num_threads()}
