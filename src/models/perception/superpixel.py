"""A model-free perceiver for photos without annotations: SLIC superpixels merged by colour.

SLIC cuts the image into about ``n_segments`` compact superpixels; neighbouring superpixels are
then merged greedily, closest mean colour (CIELAB) first, and the partition is read off at each
of ``merge_thresholds`` (a coarser threshold gives bigger regions). Every region of every
partition is a candidate: holes filled, thin filaments and specks removed, named after its mean
colour ("the dark blue area"), since nothing here knows what the object is.

It is a stand-in for the seeds' VLM + Grounded-SAM / GroundingDINO + SAM2 stage, cheap enough to
run on CPU for every base image; its regions follow colour boundaries, not object boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from skimage import color, segmentation

from .base import PERCEIVERS, Perceiver, check_image, sort_by_score
from .region import Region, mask_iou

# Reference sRGB colours for naming a region. Chromatic regions take the nearest of these in
# CIELAB with lightness down-weighted (a dark navy is still blue), then "dark"/"light" says how
# the region's lightness compares with the reference; near-grey regions are named by lightness.
_COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "olive": (128, 128, 20),
    "green": (50, 160, 50),
    "teal": (0, 128, 128),
    "blue": (40, 80, 200),
    "sky blue": (135, 200, 235),
    "purple": (120, 50, 160),
    "pink": (240, 140, 180),
    "magenta": (190, 40, 130),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
}
_COLOUR_LAB = color.rgb2lab(np.array([list(_COLOUR_NAMES.values())], dtype=np.uint8))[0]
_LIGHTNESS_WEIGHT = 0.5  # weight of L* against a*, b* when matching a chromatic colour
_GREY_CHROMA = 10.0  # below this a*b* chroma a region is white, grey or black
_LIGHTNESS_MARGIN = 15.0  # L* units before a colour is called "dark ..." or "light ..."
_TEXTURE_STD = 12.0  # L* standard deviation above which a region is called "textured"


def colour_phrase(mean_lab: Sequence[float], lightness_std: float = 0.0) -> str:
    """A short, honest description of a region from its mean CIELAB colour.

    >>> colour_phrase(color.rgb2lab(np.array([[[20, 30, 110]]], dtype=np.uint8))[0, 0])
    'the dark blue area'
    >>> colour_phrase(color.rgb2lab(np.array([[[235, 235, 230]]], dtype=np.uint8))[0, 0], 20.0)
    'the white textured area'
    """
    lightness, a, b = (float(v) for v in mean_lab)
    words = ["the"]
    if np.hypot(a, b) < _GREY_CHROMA:
        if lightness >= 85:
            words.append("white")
        elif lightness <= 20:
            words.append("black")
        else:
            shade = "dark " if lightness < 40 else "light " if lightness > 70 else ""
            words.append(shade + "grey")
    else:
        weights = np.array([_LIGHTNESS_WEIGHT, 1.0, 1.0])
        distances = np.linalg.norm((_COLOUR_LAB - [lightness, a, b]) * weights, axis=1)
        index = int(np.argmin(distances))
        delta_l = lightness - _COLOUR_LAB[index, 0]
        if delta_l < -_LIGHTNESS_MARGIN:
            words.append("dark")
        elif delta_l > _LIGHTNESS_MARGIN:
            words.append("light")
        words.append(list(_COLOUR_NAMES)[index])
    if lightness_std > _TEXTURE_STD:
        words.append("textured")
    words.append("area")
    return " ".join(words)


def _merge_by_colour(
    labels: np.ndarray, lab: np.ndarray, thresholds: Sequence[float]
) -> list[np.ndarray]:
    """Greedy merge of adjacent segments, closest mean Lab colour first.

    ``labels`` holds 0..N-1. Returns one label map per threshold (ascending), each the partition
    at the moment the closest adjacent pair first lies farther apart than that threshold, which
    is what skimage.graph.merge_hierarchical gives, at a fraction of its cost (numpy on an N x N
    matrix instead of a networkx graph).
    """
    n = int(labels.max()) + 1
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n).astype(float)
    sums = np.stack(
        [np.bincount(flat, weights=lab[..., c].ravel(), minlength=n) for c in range(3)], axis=1
    )
    means = sums / np.maximum(counts, 1)[:, None]

    adjacent = np.zeros((n, n), dtype=bool)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        differ = a != b
        adjacent[a[differ], b[differ]] = True
    adjacent |= adjacent.T
    np.fill_diagonal(adjacent, False)

    distance = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)
    distance[~adjacent] = np.inf
    parent = np.arange(n)

    snapshots: list[np.ndarray] = []
    pending = sorted(float(t) for t in thresholds)
    while pending:
        flat_index = int(np.argmin(distance))
        i, j = divmod(flat_index, n)
        closest = distance[i, j]
        while pending and closest > pending[0]:
            # Path-compressed root of every original segment = the current partition.
            snapshots.append(_resolve(parent)[labels])
            pending.pop(0)
        if not pending:
            break
        # Merge j into i.
        counts[i] += counts[j]
        sums[i] += sums[j]
        means[i] = sums[i] / counts[i]
        parent[j] = i
        adjacent[i] |= adjacent[j]
        adjacent[:, i] = adjacent[i]
        adjacent[i, i] = False
        adjacent[j, :] = False
        adjacent[:, j] = False
        row = np.linalg.norm(means - means[i], axis=1)
        row[~adjacent[i]] = np.inf
        distance[i, :] = row
        distance[:, i] = row
        distance[j, :] = np.inf
        distance[:, j] = np.inf
    return snapshots


def _resolve(parent: np.ndarray) -> np.ndarray:
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _clean(mask: np.ndarray, speck_pixels: int) -> np.ndarray:
    """Fill holes, cut one-pixel filaments, drop connected specks smaller than ``speck_pixels``."""
    m = mask.astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    n, comp, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= speck_pixels
    m = keep[comp].astype(np.uint8)
    # Holes = background components not connected to the frame.
    flood = np.pad(m, 1)  # the padding ring connects every frame-touching background piece
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (m > 0) | holes


def _solidity(mask: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    hull_mask = np.zeros(mask.shape, dtype=np.uint8)
    cv2.fillConvexPoly(hull_mask, hull, 1)
    hull_area = np.count_nonzero(hull_mask)
    return float(min(1.0, np.count_nonzero(mask) / hull_area)) if hull_area else 0.0


def _frame_contact(mask: np.ndarray, min_fraction: float) -> tuple[float, bool]:
    """(fraction of the image frame covered by the mask, whether it reaches two opposite sides).

    A side counts as reached when the mask covers at least ``min_fraction`` of it.
    """
    sides = [mask[0, :].mean(), mask[-1, :].mean(), mask[:, 0].mean(), mask[:, -1].mean()]
    h, w = mask.shape
    frame = (sides[0] * w + sides[1] * w + sides[2] * h + sides[3] * h) / (2 * (h + w))
    top, bottom, left, right = (side >= min_fraction for side in sides)
    return float(frame), bool((top and bottom) or (left and right))


def _centrality(mask: np.ndarray) -> float:
    """1 at the image centre, 0 at a corner, for the mask's centroid."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    dy = (ys.mean() - (h - 1) / 2) / (h / 2)
    dx = (xs.mean() - (w - 1) / 2) / (w / 2)
    return float(max(0.0, 1.0 - np.hypot(dx, dy) / np.sqrt(2.0)))


class SuperpixelPerceiver(Perceiver):
    """Colour-merged SLIC regions, ranked by size, compactness and centrality.

    Args:
        work_size: the longer image side is brought down to this many pixels before
            segmenting (masks come back at full size); keeps the cost flat for big images.
        n_segments: SLIC's target number of superpixels.
        compactness: SLIC's colour/space trade-off (higher = more square superpixels).
        merge_thresholds: CIELAB distances at which partitions are read off; each gives
            candidates, larger = coarser regions.
        min_area_ratio, max_area_ratio: candidates outside this area range are not proposed.
        speck_ratio: connected pieces smaller than this fraction of the image are removed from
            a region.
        side_fraction: a region reaches an image side when it covers at least this fraction
            of it.
        max_thing_area, max_thing_frame: a region is a "thing" when it covers at most
            ``max_thing_area`` of the image and at most ``max_thing_frame`` of the image frame
            (its four borders) and does not reach two opposite sides; otherwise it runs across
            the picture like sky, floor or a wall and is "stuff". Objects cut by one or two
            adjacent sides (a person cut by the bottom edge) stay things.

    Score = sqrt(area ratio) * solidity * (0.5 + 0.5 * centrality): larger, compact (area over
    convex-hull area) and central regions first. The "background" region (NOT the union of the
    thing regions) is scored the same way.
    """

    name = "superpixel"

    def __init__(
        self,
        work_size: int = 256,
        n_segments: int = 160,
        compactness: float = 10.0,
        merge_thresholds: Sequence[float] = (12.0, 20.0, 30.0),
        min_area_ratio: float = 0.01,
        max_area_ratio: float = 0.9,
        speck_ratio: float = 0.002,
        side_fraction: float = 0.05,
        max_thing_area: float = 0.5,
        max_thing_frame: float = 0.25,
    ):
        if int(work_size) < 32:
            raise ValueError(f"work_size must be >= 32 pixels, got {work_size}")
        if int(n_segments) < 2:
            raise ValueError(f"n_segments must be >= 2, got {n_segments}")
        if not merge_thresholds or any(float(t) <= 0 for t in merge_thresholds):
            raise ValueError(
                f"merge_thresholds must be a non-empty list of values > 0, got {merge_thresholds}"
            )
        if not 0.0 <= float(min_area_ratio) <= float(max_area_ratio) <= 1.0:
            raise ValueError(
                "need 0 <= min_area_ratio <= max_area_ratio <= 1, got "
                f"min_area_ratio={min_area_ratio}, max_area_ratio={max_area_ratio}"
            )
        self.work_size = int(work_size)
        self.n_segments = int(n_segments)
        self.compactness = float(compactness)
        self.merge_thresholds = tuple(sorted(float(t) for t in merge_thresholds))
        self.min_area_ratio = float(min_area_ratio)
        self.max_area_ratio = float(max_area_ratio)
        self.speck_ratio = float(speck_ratio)
        self.side_fraction = float(side_fraction)
        self.max_thing_area = float(max_thing_area)
        self.max_thing_frame = float(max_thing_frame)

    def propose(
        self, image: np.ndarray, annotations: list[dict[str, Any]] | None = None
    ) -> list[Region]:
        """Candidate regions of ``image``, highest score first; deterministic.

        Args:
            image: (H, W, 3) uint8 RGB, at least 8 pixels each side.
            annotations: ignored (this perceiver looks only at the pixels).

        Returns:
            Regions with (H, W) bool masks: "thing" and "stuff" regions of the merged
            partitions (near-duplicates across thresholds, IoU > 0.95, proposed once) plus one
            "background" region when there is at least one thing and the rest of the image is
            within the area range. Empty for a flat image with no usable region.

        Raises:
            TypeError / ValueError: ``image`` is not an (H, W, 3) uint8 array, or is smaller
                than 8 x 8.
        """
        check_image(image)
        height, width = image.shape[:2]
        if min(height, width) < 8:
            raise ValueError(f"image must be at least 8 x 8 pixels, got {height} x {width}")

        scale = min(1.0, self.work_size / max(height, width))
        if scale < 1.0:
            size = (max(8, round(width * scale)), max(8, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        else:
            small = image
        lab = color.rgb2lab(small)
        superpixels = segmentation.slic(
            small, n_segments=self.n_segments, compactness=self.compactness, start_label=0
        )
        _, superpixels = np.unique(superpixels, return_inverse=True)
        superpixels = superpixels.reshape(small.shape[:2])

        pixels = superpixels.size
        speck_pixels = max(1, round(self.speck_ratio * pixels))
        candidates: list[tuple[np.ndarray, str, float]] = []  # (mask, kind, score) at work size
        for partition in _merge_by_colour(superpixels, lab, self.merge_thresholds):
            for k in np.unique(partition):
                raw = partition == k
                if not self.min_area_ratio <= raw.mean() <= self.max_area_ratio:
                    continue
                mask = _clean(raw, speck_pixels)
                area = mask.mean()
                if not mask.any() or not self.min_area_ratio <= area <= self.max_area_ratio:
                    continue
                if any(mask_iou(mask, other) > 0.95 for other, _, _ in candidates):
                    continue
                frame, spans = _frame_contact(mask, self.side_fraction)
                is_thing = area <= self.max_thing_area and frame <= self.max_thing_frame and not spans
                candidates.append((mask, "thing" if is_thing else "stuff", self._score(mask)))

        things = [m for m, kind, _ in candidates if kind == "thing"]
        if things:
            background = ~np.logical_or.reduce(things)
            if self.min_area_ratio <= background.mean() <= self.max_area_ratio:
                candidates.append((background, "background", self._score(background)))

        regions = []
        for mask, kind, score in candidates:
            label = "background" if kind == "background" else self._describe(mask, lab)
            if scale < 1.0:
                full = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
                mask = full > 0
            regions.append(Region(mask=mask, label=label, kind=kind, score=score, source=self.name))
        return sort_by_score(regions)

    @staticmethod
    def _score(mask: np.ndarray) -> float:
        return float(np.sqrt(mask.mean()) * _solidity(mask) * (0.5 + 0.5 * _centrality(mask)))

    @staticmethod
    def _describe(mask: np.ndarray, lab: np.ndarray) -> str:
        values = lab[mask]
        return colour_phrase(values.mean(axis=0), float(values[:, 0].std()))


@PERCEIVERS.register("superpixel", description="SLIC superpixels merged by colour, no model")
def build_superpixel_perceiver(**kwargs: Any) -> SuperpixelPerceiver:
    return SuperpixelPerceiver(**kwargs)
