"""Metrics: the project's evaluation (``models.metrics.ConfusionMatrix`` + ``BoundaryF1``, batched)
vs a straightforward per-image reference (per class-pair counts; per class, boundaries by erosion
and matching by dilation with the tolerance disk, scipy.ndimage), on the same label maps.
The numbers must be identical; the project's must be >= 10x faster."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from benchmarks.common import timed
from models.metrics import BoundaryF1, ConfusionMatrix

CROSS = ndimage.generate_binary_structure(2, 1)


def label_maps(n: int, size: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, target): targets with 1-4 rectangles of random classes; predictions = the same
    rectangles shifted by a few pixels, some of another class, plus a false positive."""
    rng = np.random.default_rng(seed)
    target = np.zeros((n, size, size), np.uint8)
    pred = np.zeros_like(target)
    for i in range(n):
        for _ in range(rng.integers(1, 5)):
            y, x = rng.integers(0, size - 64, 2)
            h, w = rng.integers(16, size // 2, 2)
            c = rng.integers(1, classes)
            target[i, y:y + h, x:x + w] = c
            dy, dx = rng.integers(-6, 7, 2)
            pc = c if rng.random() < 0.8 else rng.integers(1, classes)
            pred[i, max(0, y + dy):y + h + dy, max(0, x + dx):x + w + dx] = pc
        y, x = rng.integers(0, size - 32, 2)
        pred[i, y:y + 24, x:x + 24] = rng.integers(1, classes)
    return pred, target


def project(pred: np.ndarray, target: np.ndarray, classes: int, batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
    cm, bf = ConfusionMatrix(classes), BoundaryF1(classes, tolerance_px=2)
    for start in range(0, len(pred), batch):
        cm.update(pred[start:start + batch], target[start:start + batch])
        bf.update(pred[start:start + batch], target[start:start + batch])
    return cm.matrix, bf.per_class()


def _disk(tolerance: float) -> np.ndarray:
    r = int(np.floor(tolerance))
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return y * y + x * x <= tolerance * tolerance


def reference(pred: np.ndarray, target: np.ndarray, classes: int, tolerance: float = 2) -> tuple[np.ndarray, np.ndarray]:
    """One image and one class at a time, the textbook way."""
    disk = _disk(tolerance)
    cm = np.zeros((classes, classes), np.int64)
    counts = np.zeros((4, classes), np.int64)  # matched pred, pred, matched gt, gt
    for p, t in zip(pred, target):
        for i in range(classes):
            for j in range(classes):
                cm[i, j] += int(np.count_nonzero((t == i) & (p == j)))
        for c in range(1, classes):
            pm, tm = p == c, t == c
            # a pixel of c with a 4-neighbour (inside the image) of another class
            pb = pm & ~ndimage.binary_erosion(pm, CROSS, border_value=1)
            tb = tm & ~ndimage.binary_erosion(tm, CROSS, border_value=1)
            counts[0, c] += np.count_nonzero(pb & ndimage.binary_dilation(tb, disk))
            counts[1, c] += np.count_nonzero(pb)
            counts[2, c] += np.count_nonzero(tb & ndimage.binary_dilation(pb, disk))
            counts[3, c] += np.count_nonzero(tb)
    return cm, BoundaryF1.from_counts(counts, tolerance).per_class()


def run(n: int = 500, size: int = 512, classes: int = 5) -> dict[str, Any]:
    pred, target = label_maps(n, size, classes)
    project(pred[:4], target[:4], classes)  # warm-up
    fast_s, (cm_fast, bf_fast) = timed(lambda: project(pred, target, classes))
    slow_s, (cm_ref, bf_ref) = timed(lambda: reference(pred, target, classes))
    identical = bool(np.array_equal(cm_fast, cm_ref) and np.array_equal(bf_fast, bf_ref, equal_nan=True))
    return {"label_maps": n, "size": size, "classes": classes, "project_s": fast_s, "reference_s": slow_s,
            "speedup": slow_s / fast_s, "identical": identical, "target": ">= 10x, identical",
            "bf1_per_class": [None if np.isnan(v) else float(v) for v in bf_fast]}
