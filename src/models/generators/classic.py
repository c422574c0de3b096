"""Classic (non-generative) manipulations as their own classes, as OpenSDI includes them:
copy-move (a region of the same image pasted over the mask) and splicing (a region of another
image pasted over the mask). The label map marks exactly the pasted pixels (the mask).

Both ignore the prompt; the seed chooses where the pasted pixels come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from .base import GENERATORS, InpaintGenerator


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _far_offset(rng: np.random.Generator, size: int, extent: int, min_shift: float) -> int:
    """A shift in [min_shift * size, size - min_shift * size] (mod size): far from 0 so that the
    source does not overlap the target, when the region leaves room for it."""
    low = max(1, int(round(min_shift * size)), min(extent, size // 2))
    high = size - low
    return int(rng.integers(low, high + 1)) if high >= low else size // 2


class CopyMoveGenerator(InpaintGenerator):
    """Copy-move: ``edited[y, x] = image[(y + dy) % H, (x + dx) % W]`` inside the mask.

    The offset (dy, dx) is drawn from the seed, at least ``min_shift`` of each side and, where
    the region is small enough, at least its own extent so that source and target do not overlap.
    Wrapping around the border keeps every mask shape valid (a background region may span the
    whole image). Provenance records the offset.
    """

    name = "copy_move"

    def __init__(self, min_shift: float = 0.25):
        if not 0.0 < float(min_shift) <= 0.5:
            raise ValueError(f"min_shift must be in (0, 0.5], got {min_shift}")
        self.min_shift = float(min_shift)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(int(seed))
        height, width = mask.shape
        y0, y1, x0, x1 = _bounding_box(mask)
        dy = _far_offset(rng, height, y1 - y0, self.min_shift)
        dx = _far_offset(rng, width, x1 - x0, self.min_shift)
        source = np.roll(image, shift=(-dy, -dx), axis=(0, 1))
        self.record(source_offset=[dy, dx])
        return np.where(mask[..., None], source, image)

    def __repr__(self) -> str:
        return f"CopyMoveGenerator(min_shift={self.min_shift})"


DonorSource = Mapping[str, Callable[[], np.ndarray]]


class SplicingGenerator(InpaintGenerator):
    """Splicing: the mask is filled with the pixels of another image (a donor) under the same
    mask shape, at an offset drawn from the seed.

    Donors are given with ``use_donors(images, exclude=...)`` (the inpaint node passes every base
    image except the one being edited); the seed picks the donor and the offset. A donor of
    another size is resized to the edited image's size first. Provenance records the donor id and
    the offset.

    Raises:
        RuntimeError: no donor image is available when ``inpaint`` is called.
    """

    name = "splicing"

    def __init__(self) -> None:
        self._donors: DonorSource = {}
        self._exclude: set[str] = set()

    def use_donors(self, images: DonorSource, exclude: str | list[str] | tuple[str, ...] = ()) -> None:
        """Draw donors from ``images`` (id -> loader of an (H, W, 3) uint8 image), never from
        the ids in ``exclude``."""
        self._donors = images
        self._exclude = {exclude} if isinstance(exclude, str) else set(exclude)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        candidates = sorted(k for k in self._donors if k not in self._exclude)
        if not candidates:
            raise RuntimeError("splicing needs donor images: call use_donors(images, exclude=base_id) first")
        rng = np.random.default_rng(int(seed))
        donor_id = candidates[int(rng.integers(0, len(candidates)))]
        donor = np.asarray(self._donors[donor_id]())
        height, width = mask.shape
        if donor.shape[:2] != (height, width):
            donor = cv2.resize(donor, (width, height), interpolation=cv2.INTER_AREA)
        y0, y1, x0, x1 = _bounding_box(mask)
        # Where in the donor the region's bounding box is taken from (inside the donor).
        sy = int(rng.integers(0, height - (y1 - y0) + 1))
        sx = int(rng.integers(0, width - (x1 - x0) + 1))
        source = np.roll(donor, shift=(y0 - sy, x0 - sx), axis=(0, 1))
        self.record(donor_id=donor_id, source_offset=[sy - y0, sx - x0])
        return np.where(mask[..., None], source, image)

    def __repr__(self) -> str:
        return f"SplicingGenerator(donors={len(self._donors)})"


@GENERATORS.register("copy_move", description="copy-move: a region of the same image pasted over the mask",
                     pipeline="", supported=True)
def build_copy_move(min_shift: float = 0.25) -> CopyMoveGenerator:
    """Copy-move forgery; see ``CopyMoveGenerator``."""
    return CopyMoveGenerator(min_shift=min_shift)


@GENERATORS.register("splicing", description="splicing: a region of another base image pasted over the mask",
                     pipeline="", supported=True)
def build_splicing() -> SplicingGenerator:
    """Splicing forgery; see ``SplicingGenerator`` (donors come from the inpaint node)."""
    return SplicingGenerator()
