"""Regions read from a dataset's own annotations (COCO panoptic style), no model involved.

This stands in for the seeds' detector + segmenter when the base images come with masks: every
annotated thing becomes a "thing" region, every non-thing a "stuff" region, and, as in BR-Gen,
one "background" region is the inverse of the union of the thing masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import PERCEIVERS, Perceiver, check_image, sort_by_score
from .region import Region

# COCO panoptic stuff names carry suffixes ("sky-other-merged", "wall-brick", "floor-wood");
# a prompt wants "sky", "brick wall", "wood floor".
_DROPPED_NAME_PARTS = {"merged", "other", "stuff"}
_MATERIAL_FIRST = {"wood", "brick", "stone", "tile"}


def category_phrase(category: str) -> str:
    """A prompt-ready noun phrase for a dataset category name.

    >>> category_phrase("sky-other-merged"), category_phrase("wall-brick"), category_phrase("person")
    ('sky', 'brick wall', 'person')
    """
    parts = [p for p in category.strip().lower().replace("_", " ").split("-") if p]
    kept = [p for p in parts if p not in _DROPPED_NAME_PARTS] or parts[:1]
    if len(kept) == 2 and kept[1] in _MATERIAL_FIRST:
        kept = [kept[1], kept[0]]
    return " ".join(kept)


class AnnotationPerceiver(Perceiver):
    """Turns dataset annotations into ranked regions.

    Score = area ratio, times ``person_boost`` for the category "person": DiffSeg30k steers its
    VLM towards humans and larger objects, which it otherwise under-selects. The background
    region is scored by its area ratio like any other.
    """

    name = "annotations"

    def __init__(self, person_boost: float = 2.0):
        person_boost = float(person_boost)
        if not np.isfinite(person_boost) or person_boost <= 0:
            raise ValueError(f"person_boost must be a finite number > 0, got {person_boost}")
        self.person_boost = person_boost

    def propose(
        self, image: np.ndarray, annotations: list[dict[str, Any]] | None = None
    ) -> list[Region]:
        """Regions from ``annotations``, highest score first.

        Args:
            image: (H, W, 3) uint8 RGB; only its size is used.
            annotations: one dict per segment: ``category`` (str), ``isthing`` (bool),
                ``mask`` ((H, W) bool); an optional ``supercategory`` is ignored. Empty masks
                are skipped.

        Returns:
            One region per non-empty annotation (kind "thing" or "stuff", label from the
            category name) plus, when at least one thing exists and it leaves pixels free, a
            "background" region = NOT(union of the thing masks).

        Raises:
            ValueError: ``annotations`` is None, a dict lacks a key, or a mask is not a bool
                array of the image's size.
        """
        check_image(image)
        if annotations is None:
            raise ValueError("the 'annotations' perceiver needs annotations; got None")
        height, width = image.shape[:2]

        regions: list[Region] = []
        things_union = np.zeros((height, width), dtype=bool)
        has_thing = False
        for i, annotation in enumerate(annotations):
            missing = {"category", "isthing", "mask"} - set(annotation)
            if missing:
                raise ValueError(f"annotation {i} lacks key(s) {sorted(missing)}")
            mask = annotation["mask"]
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
                got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
                # A 0/255 or 0/1 mask would silently mean different things; make the caller decide.
                raise ValueError(f"annotation {i}: mask must be a bool array, got {got}")
            if mask.shape != (height, width):
                raise ValueError(
                    f"annotation {i}: mask shape {mask.shape} does not match image size "
                    f"{(height, width)} (H, W)"
                )
            if not mask.any():
                continue
            category = str(annotation["category"])
            is_thing = bool(annotation["isthing"])
            if is_thing:
                things_union |= mask
                has_thing = True
            area_ratio = float(mask.mean())
            boost = self.person_boost if category == "person" else 1.0
            regions.append(
                Region(
                    mask=mask.copy(),
                    label=category_phrase(category),
                    kind="thing" if is_thing else "stuff",
                    score=area_ratio * boost,
                    source=self.name,
                )
            )

        if has_thing:
            background = ~things_union
            if background.any():
                regions.append(
                    Region(
                        mask=background,
                        label="background",
                        kind="background",
                        score=float(background.mean()),
                        source=self.name,
                    )
                )
        return sort_by_score(regions)


@PERCEIVERS.register("annotations", description="dataset annotations (COCO panoptic style)")
def build_annotation_perceiver(person_boost: float = 2.0) -> AnnotationPerceiver:
    return AnnotationPerceiver(person_boost=person_boost)
