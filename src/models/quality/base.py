"""The quality-scorer contract: one float per image, with its direction and sane range.

BR-Gen's evaluation stage drops forgeries whose BRISQUE exceeds 60; DiffSeg30k drops results its
VLM rates below 3. Scorers here are the no-reference measures such filters are built on; every
entry of ``QUALITY_SCORERS`` has the same interface.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..images import check_rgb_image
from ..registry import Registry

# One registry for the family; each scorer module registers its entries on import.
QUALITY_SCORERS = Registry("quality scorer")


def check_image(image: Any, min_side: int) -> None:
    """Raise unless ``image`` is (H, W, 3) uint8 with both sides >= ``min_side`` (see check_rgb_image)."""
    check_rgb_image(image, min_side=min_side)


class QualityScorer:
    """Base class of all quality scorers.

    Attributes:
        name: registry name.
        higher_is_better: direction of the score.
        valid_range: (low, high) interval a score of a real photo is expected to lie in; a
            score outside it points to a broken image or a broken scorer (for data checks,
            not a clip).
        min_side: smallest image side, in pixels, the scorer accepts.
        needs: what ``score`` takes besides the image, as keyword arguments: ``"prompt"``
            (the edit prompt(s), for text-image agreement) and/or ``"reference"`` (the unedited
            base image, for full-reference similarity). Empty for no-reference scorers.
    """

    name: str = "quality scorer"
    higher_is_better: bool = True
    valid_range: tuple[float, float] = (-np.inf, np.inf)
    min_side: int = 1
    needs: tuple[str, ...] = ()

    def score(self, image: np.ndarray, **context: object) -> float:
        """Score one (H, W, 3) uint8 RGB image; ``context`` holds what ``needs`` lists.

        Raises ValueError on bad input (the filter records it as unscorable).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def create_quality_scorer(name: str, **kwargs: Any) -> QualityScorer:
    """Build the quality scorer registered as ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    return QUALITY_SCORERS.create(name, **kwargs)


def list_quality_scorers() -> list[str]:
    """Sorted names of the registered quality scorers."""
    return QUALITY_SCORERS.names()
