"""Perception: where in an image an edit goes.

Perceivers propose candidate ``Region`` masks (thing / stuff / background), ``select_regions``
keeps up to 1..3 of them without near-duplicates, and ``prompts`` writes the edit prompt for each.

Example::

    perceiver = create_perceiver("superpixel")
    regions = perceiver.propose(image)  # best first
    count = choose_region_count(rng, (1, 4, 5))
    chosen = select_regions(regions, count, min_area_ratio=0.01, max_area_ratio=0.5)
    prompts = [make_edit_prompt(r, choose_edit_type(rng, weights), rng) for r in chosen]
"""

from . import annotations as _annotations  # noqa: F401  (registers "annotations")
from . import superpixel as _superpixel  # noqa: F401  (registers "superpixel")
from .annotations import AnnotationPerceiver, category_phrase
from .base import PERCEIVERS, Perceiver, create_perceiver, list_perceivers
from .prompts import EDIT_TYPES, choose_edit_type, make_edit_prompt
from .region import REGION_KINDS, Region, choose_region_count, mask_iou, select_regions
from .superpixel import SuperpixelPerceiver, colour_phrase

__all__ = [
    "EDIT_TYPES",
    "PERCEIVERS",
    "REGION_KINDS",
    "AnnotationPerceiver",
    "Perceiver",
    "Region",
    "SuperpixelPerceiver",
    "category_phrase",
    "choose_edit_type",
    "choose_region_count",
    "colour_phrase",
    "create_perceiver",
    "list_perceivers",
    "make_edit_prompt",
    "mask_iou",
    "select_regions",
]
