"""Dataset-level balance of the chosen regions: categories and mask-area buckets.

BR-Gen "manually controls the number of all the objects" so that no category dominates;
DiffSeg30k reports its category and mask-area distributions and steers its VLM against the
natural bias towards small objects. Per image, the perceivers already rank candidates (humans
and larger regions first); across the dataset, ``RegionBalancer`` keeps running counts of the
categories and area buckets chosen so far and down-weights the over-represented ones in the next
image's selection order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .region import Region

# Mask area ratio bucket edges (fractions of the image). BR-Gen and DiffSeg30k both break their
# statistics down by mask area; these buckets separate small objects from scene-sized regions.
DEFAULT_AREA_EDGES = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)


def area_bucket(area_ratio: float, edges: Sequence[float] = DEFAULT_AREA_EDGES) -> str:
    """The bucket name ("0.05-0.10") holding ``area_ratio``; buckets are [lo, hi), the last one
    closed.

    Raises:
        ValueError: ``area_ratio`` outside [edges[0], edges[-1]] or edges not increasing.
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"area bucket edges must be at least two increasing values, got {edges}")
    value = float(area_ratio)
    if not edges[0] <= value <= edges[-1]:
        raise ValueError(f"area ratio {value} outside the bucket range [{edges[0]}, {edges[-1]}]")
    index = min(int(np.searchsorted(edges, value, side="right")) - 1, len(edges) - 2)
    return f"{edges[index]:.2f}-{edges[index + 1]:.2f}"


def region_category(region: Region) -> str:
    """What balancing counts a region as: its label, except one shared "background" category."""
    return "background" if region.kind == "background" else region.label


class RegionBalancer:
    """Running counts of chosen categories and area buckets, and a selection order that favours
    the under-represented ones.

    The order is a Gumbel-top-k draw on ``log(score) + log(weight)`` with
    ``weight = (1 + n_category) ** -strength * (1 + n_bucket) ** -strength``, where ``n_*`` are the
    counts recorded so far. ``strength = 0`` gives exactly the per-image score order with Gumbel
    noise (no dataset-level balancing); larger values balance harder.

    Args:
        strength: exponent of the inverse-count weights, >= 0.
        area_edges: mask area ratio bucket edges (see ``area_bucket``).
    """

    def __init__(self, strength: float = 1.0, area_edges: Sequence[float] = DEFAULT_AREA_EDGES):
        strength = float(strength)
        if not np.isfinite(strength) or strength < 0:
            raise ValueError(f"strength must be a finite number >= 0, got {strength}")
        area_bucket(0.0, area_edges)  # validates the edges
        self.strength = strength
        self.area_edges = tuple(float(e) for e in area_edges)
        self.category_counts: Counter[str] = Counter()
        self.bucket_counts: Counter[str] = Counter()

    def bucket(self, region: Region) -> str:
        return area_bucket(region.area_ratio, self.area_edges)

    def weight(self, region: Region) -> float:
        """The balancing weight in (0, 1] of ``region`` given the counts so far."""
        if self.strength == 0:
            return 1.0
        n_category = self.category_counts[region_category(region)]
        n_bucket = self.bucket_counts[self.bucket(region)]
        return float((1.0 + n_category) ** -self.strength * (1.0 + n_bucket) ** -self.strength)

    def order(self, regions: Sequence[Region], rng: np.random.Generator) -> list[Region]:
        """``regions`` in a random order where high score x weight comes first most of the time.

        Draws ``len(regions)`` Gumbel variates from ``rng`` (none for an empty list).
        """
        if not regions:
            return []
        scores = np.array([max(r.score, 1e-6) for r in regions])
        weights = np.array([self.weight(r) for r in regions])
        keys = np.log(scores) + np.log(weights) + rng.gumbel(size=len(regions))
        return [regions[i] for i in np.argsort(-keys, kind="stable")]

    def record(self, region: Region) -> None:
        """Count ``region`` as chosen."""
        self.category_counts[region_category(region)] += 1
        self.bucket_counts[self.bucket(region)] += 1
