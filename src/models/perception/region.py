"""Candidate edit regions and how a few of them are chosen for the edit turns.

DiffSeg30k, stage 1: candidate masks overlapping an already kept one by IoU > 0.7 are dropped,
and 1 to 3 of them are edited, with turn counts 1:2:3 at about 1:4:5. BR-Gen adds the three
mask kinds kept here in ``Region.kind``: thing, stuff, background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REGION_KINDS = ("thing", "stuff", "background")


@dataclass
class Region:
    """One candidate region of one image.

    Attributes:
        mask: (H, W) bool, True inside the region.
        label: noun phrase usable in a prompt ("person", "sky", "the dark blue area").
        kind: "thing" (an object), "stuff" (sky, grass, wall ...) or "background" (the inverse
            of the union of the thing masks).
        score: ranking value, higher = preferred; only comparable within one perceiver.
        source: name of the perceiver that proposed it.
    """

    mask: np.ndarray
    label: str
    kind: str
    score: float
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.mask, np.ndarray) or self.mask.dtype != np.bool_ or self.mask.ndim != 2:
            got = (
                f"{self.mask.dtype} array of shape {self.mask.shape}"
                if isinstance(self.mask, np.ndarray)
                else type(self.mask).__name__
            )
            raise ValueError(f"Region.mask must be a 2-D bool array, got {got}")
        if self.kind not in REGION_KINDS:
            raise ValueError(f"Region.kind must be one of {REGION_KINDS}, got {self.kind!r}")
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"Region.label must be a non-empty str, got {self.label!r}")
        self.score = float(self.score)

    @property
    def area_ratio(self) -> float:
        """Fraction of the image covered by the mask, in [0, 1]."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) masks (any dtype; nonzero = inside).

    Returns a float in [0, 1]; 0.0 when both masks are empty.

    Raises:
        ValueError: the shapes differ.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    if union == 0:
        return 0.0
    return np.count_nonzero(a & b) / union


def _check_ratio(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def select_regions(
    regions: Sequence[Region],
    count: int,
    *,
    iou_threshold: float = 0.7,
    min_area_ratio: float,
    max_area_ratio: float,
) -> list[Region]:
    """Greedy choice of up to ``count`` regions, in the given (ranked) order.

    A candidate is skipped when its area ratio lies outside [min_area_ratio, max_area_ratio] or
    when its IoU with a region kept before it is strictly greater than ``iou_threshold``
    (DiffSeg30k: "IoU > 0.7 dropped"). Fewer than ``count`` come back when not enough survive.

    Raises:
        ValueError: ``count`` < 1 or not an integer; a threshold outside [0, 1];
            ``min_area_ratio`` > ``max_area_ratio``.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    iou_threshold = _check_ratio("iou_threshold", iou_threshold)
    min_area_ratio = _check_ratio("min_area_ratio", min_area_ratio)
    max_area_ratio = _check_ratio("max_area_ratio", max_area_ratio)
    if min_area_ratio > max_area_ratio:
        raise ValueError(
            f"min_area_ratio ({min_area_ratio}) must not exceed max_area_ratio ({max_area_ratio})"
        )

    kept: list[Region] = []
    for region in regions:
        if len(kept) == count:
            break
        if not min_area_ratio <= region.area_ratio <= max_area_ratio:
            continue
        if any(mask_iou(region.mask, other.mask) > iou_threshold for other in kept):
            continue
        kept.append(region)
    return kept


def choose_region_count(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """Draw how many regions (= edit turns) one image gets: 1..len(weights).

    ``weights[i]`` is the relative weight of count ``i + 1`` (DiffSeg30k: 1:4:5 for 1, 2, 3).

    Raises:
        ValueError: empty weights, a negative or non-finite weight, or all weights zero.
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D sequence, got {weights!r}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and >= 0, got {list(w)}")
    total = w.sum()
    if total <= 0:
        raise ValueError(f"weights must not all be zero, got {list(w)}")
    return int(rng.choice(w.size, p=w / total)) + 1
