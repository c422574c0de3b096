"""Choosing the best of several seeds per edit (OpenSDI: several seeds, CLIP keeps the best).

``apply_edits(..., candidates=N, score_candidate=scorer)`` runs N seeds per turn and keeps the
highest-scoring output; this module provides that scorer on top of the CLIP text-image score of
``models.quality`` (the same CLIPScore BR-Gen's filter uses).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_REGIONS = ("bbox", "image")


def region_crop(image: np.ndarray, mask: np.ndarray, margin: float = 0.25, min_side: int = 32) -> np.ndarray:
    """The part of ``image`` around ``mask``'s bounding box, grown by ``margin`` of its size on each
    side and to at least ``min_side`` pixels (clipped to the image)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    height, width = mask.shape
    grow_y = max(int((y1 - y0) * margin), (min_side - (y1 - y0) + 1) // 2, 0)
    grow_x = max(int((x1 - x0) * margin), (min_side - (x1 - x0) + 1) // 2, 0)
    return image[max(0, y0 - grow_y):min(height, y1 + grow_y), max(0, x0 - grow_x):min(width, x1 + grow_x)]


class ClipCandidateScorer:
    """``(edited_image, mask, prompt) -> CLIPScore`` for ``apply_edits``.

    Args:
        scorer: an object with ``score(image, prompt=...) -> float`` (``models.quality``'s "clip").
        region: "bbox" scores the edited region's surroundings (``region_crop``), where a local
            prompt is about; "image" scores the whole picture.

    An empty prompt (prompt-free edits) scores 0 for every candidate, so the first seed is kept.
    """

    def __init__(self, scorer: Any, region: str = "bbox"):
        if region not in _REGIONS:
            raise ValueError(f"region must be one of {_REGIONS}, got {region!r}")
        self.scorer = scorer
        self.region = region

    def __call__(self, image: np.ndarray, mask: np.ndarray, prompt: str) -> float:
        if not prompt or not prompt.strip():
            return 0.0
        view = region_crop(image, mask) if self.region == "bbox" else image
        return float(self.scorer.score(np.ascontiguousarray(view), prompt=prompt))


def build_clip_candidate_scorer(model: str, device: str = "cpu", dtype: str = "float32",
                                region: str = "bbox") -> ClipCandidateScorer:
    """A ``ClipCandidateScorer`` over the CLIP checkpoint ``model`` (hub id in the cache or folder)."""
    from ..quality import create_quality_scorer

    return ClipCandidateScorer(create_quality_scorer("clip", model=model, device=device, dtype=dtype), region=region)
