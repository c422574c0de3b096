"""Perception: where in an image an edit goes.

Perceivers propose candidate ``Region`` masks (thing / stuff / background), ``select_regions``
keeps up to 1..3 of them without near-duplicates, and ``prompts`` writes the edit prompt for each.

Perceivers: ``annotations`` (dataset masks), ``superpixel`` (model-free), ``grounded_sam``
(GroundingDINO + SAM through transformers), ``florence2_sam`` (Florence-2 phrase grounding + SAM,
OpenSDI's). Vision-language models (``create_vlm``: Qwen2.5-VL, Qwen2-VL, LLaVA, Llama 3.2
Vision, InternVL) list objects, describe regions, write edit prompts and propose objects to add
(``additions``: OpenSDI's one-turn "add"); ``RegionBalancer`` balances
categories and area buckets across a dataset.

Example::

    perceiver = create_perceiver("superpixel")
    regions = perceiver.propose(image)  # best first
    count = choose_region_count(rng, (1, 4, 5))
    chosen = select_regions(regions, count, min_area_ratio=0.01, max_area_ratio=0.5)
    prompts = [make_edit_prompt(r, choose_edit_type(rng, weights), rng) for r in chosen]
"""

from . import annotations as _annotations  # noqa: F401  (registers "annotations")
from . import florence_sam as _florence_sam  # noqa: F401  (registers "florence2_sam")
from . import grounded as _grounded  # noqa: F401  (registers "grounded_sam")
from . import superpixel as _superpixel  # noqa: F401  (registers "superpixel")
from .additions import AddEdit, AddSizing, addition_mask, ground_with, write_add_edit
from .annotations import AnnotationPerceiver, category_phrase
from .balance import RegionBalancer, area_bucket, region_category
from .base import PERCEIVERS, Perceiver, create_perceiver, list_perceivers
from .edits import EditTurn, write_region_edits
from .florence_sam import Florence2Grounder, Florence2SamPerceiver
from .grounded import Detection, GroundedSamPerceiver, GroundingDinoDetector, SamSegmenter
from .prompts import (
    EDIT_TYPES,
    choose_edit_type,
    definite_description,
    make_edit_prompt,
    perturb_description,
    plan_edit_types,
)
from .region import REGION_KINDS, Region, choose_region_count, mask_iou, select_regions
from .superpixel import SuperpixelPerceiver, colour_phrase
from .vocabulary import COCO_STUFF_NAMES, COCO_THING_NAMES, is_human, merge_names, name_kind
from .vlm import VLMS, VisionLanguageModel, create_vlm, list_vlms, mark_region
from .vlm_parsing import ADD_RELATIONS, AddProposal, VLMParseError, parse_add_proposal

__all__ = [
    "ADD_RELATIONS",
    "AddEdit",
    "AddProposal",
    "AddSizing",
    "addition_mask",
    "ground_with",
    "parse_add_proposal",
    "write_add_edit",
    "COCO_STUFF_NAMES",
    "COCO_THING_NAMES",
    "EDIT_TYPES",
    "Florence2Grounder",
    "Florence2SamPerceiver",
    "PERCEIVERS",
    "REGION_KINDS",
    "VLMS",
    "AnnotationPerceiver",
    "Detection",
    "EditTurn",
    "GroundedSamPerceiver",
    "GroundingDinoDetector",
    "Perceiver",
    "Region",
    "RegionBalancer",
    "SamSegmenter",
    "SuperpixelPerceiver",
    "VLMParseError",
    "VisionLanguageModel",
    "area_bucket",
    "category_phrase",
    "choose_edit_type",
    "choose_region_count",
    "colour_phrase",
    "create_perceiver",
    "create_vlm",
    "definite_description",
    "is_human",
    "list_perceivers",
    "list_vlms",
    "make_edit_prompt",
    "mark_region",
    "mask_iou",
    "merge_names",
    "name_kind",
    "perturb_description",
    "plan_edit_types",
    "region_category",
    "select_regions",
    "write_region_edits",
]
