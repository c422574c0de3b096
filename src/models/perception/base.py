"""The perceiver contract: ``propose`` lists candidate edit regions of one image, best first.

A perceiver plays the part of the seeds' perception stage (DiffSeg30k: Qwen2.5-VL + Grounded-SAM;
BR-Gen: GroundingDINO + SAM2). Every entry of ``PERCEIVERS`` has the same interface, so the
pipelines can swap them by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..images import check_rgb_image
from ..registry import Registry
from .region import Region

# One registry for the family; each perceiver module registers its entries on import.
PERCEIVERS = Registry("perceiver")


def check_image(image: Any) -> None:
    """Raise unless ``image`` is a non-empty (H, W, 3) uint8 array."""
    check_rgb_image(image)


class Perceiver:
    """Base class of all perceivers; subclasses set ``name`` and implement ``propose``."""

    name: str = "perceiver"
    # True when ``propose`` also takes ``object_names`` (names to ground, e.g. a VLM's list).
    accepts_object_names: bool = False

    def propose(
        self, image: np.ndarray, annotations: list[dict[str, Any]] | None = None
    ) -> list[Region]:
        """Candidate regions of ``image`` ((H, W, 3) uint8 RGB), sorted by score, highest first.

        ``annotations`` are dataset annotations (see ``AnnotationPerceiver``); perceivers that
        look only at the pixels ignore them.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def create_perceiver(name: str, **kwargs: Any) -> Perceiver:
    """Build the perceiver registered as ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    return PERCEIVERS.create(name, **kwargs)


def list_perceivers() -> list[str]:
    """Sorted names of the registered perceivers."""
    return PERCEIVERS.names()


def sort_by_score(regions: list[Region]) -> list[Region]:
    """Regions by descending score; ties keep their proposal order (stable sort)."""
    return sorted(regions, key=lambda r: -r.score)
