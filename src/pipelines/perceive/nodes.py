"""Perceive: propose editable regions per base image, keep 1-3 per edited sample, write prompts."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.perception import (
    Region,
    choose_edit_type,
    choose_region_count,
    create_perceiver,
    make_edit_prompt,
    select_regions,
)
from pipelines.ingest.nodes import decode_rle

logger = logging.getLogger(__name__)

REGION_COLUMNS = [
    "region_id", "sample_id", "base_id", "turn", "label", "kind", "score", "area_ratio",
    "edit_type", "prompt", "perceiver", "prompt_source",
]


def sample_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the run seed and the item's id, so results do not change
    when items are processed in another order or in shards."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def _annotations_for(base_id: str, table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table[table["base_id"] == base_id] if len(table) else table
    return [
        {"category": r.category, "supercategory": r.supercategory, "isthing": bool(r.isthing), "mask": decode_rle(r.rle)}
        for r in rows.itertuples()
    ]


def _shuffled_by_score(regions: list[Region], rng: np.random.Generator) -> list[Region]:
    """Order candidates by score with Gumbel noise: high-score regions come first most of the
    time, but variants of one base image get different regions."""
    if not regions:
        return regions
    scores = np.array([max(r.score, 1e-6) for r in regions])
    keys = np.log(scores) + rng.gumbel(size=len(regions))
    return [regions[i] for i in np.argsort(-keys, kind="stable")]


def perceive_regions(
    base_images: dict[str, Callable[[], np.ndarray]],
    base_annotations: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame]:
    """For each base image and each of ``variants_per_base`` samples: propose regions, drop area
    outliers and IoU > ``iou_threshold`` duplicates, keep 1-3 (count drawn from
    ``turn_count_weights``, seed 1:4:5), give each an edit type and a prompt.

    Returns (region_masks: region_id -> (H,W) uint8 0/255, regions table; one row per region, in
    turn order). A base image with no usable region is logged and gets no sample.
    """
    seed = int(params.get("seed", 0))
    perceiver_name = params["perceiver"]
    perceivers: dict[str, Any] = {}

    def perceiver_for(has_annotations: bool):
        name = perceiver_name
        if name == "auto":
            name = "annotations" if has_annotations else params.get("fallback_perceiver", "superpixel")
        if name not in perceivers:
            perceivers[name] = create_perceiver(name, **params.get("perceiver_kwargs", {}).get(name, {}))
        return name, perceivers[name]

    masks: dict[str, np.ndarray] = {}
    rows = []
    for base_id in tqdm(sorted(base_images), desc="perceive", unit="image"):
        image = base_images[base_id]()
        annotations = _annotations_for(base_id, base_annotations)
        name, perceiver = perceiver_for(bool(annotations))
        candidates = perceiver.propose(image, annotations or None)
        for variant in range(int(params.get("variants_per_base", 1))):
            sample_id = f"{base_id}-v{variant}"
            rng = sample_rng(seed, sample_id)
            count = choose_region_count(rng, params["turn_count_weights"])
            chosen = select_regions(
                _shuffled_by_score(candidates, rng), count,
                iou_threshold=params["iou_threshold"],
                min_area_ratio=params["min_area_ratio"], max_area_ratio=params["max_area_ratio"],
            )
            if not chosen:
                logger.warning("%s: no region within area bounds; no sample made", sample_id)
                continue
            for turn, region in enumerate(chosen, start=1):
                edit_type = choose_edit_type(rng, params["edit_type_weights"])
                region_id = f"{sample_id}-t{turn}"
                masks[region_id] = region.mask.astype(np.uint8) * 255
                rows.append({
                    "region_id": region_id, "sample_id": sample_id, "base_id": base_id, "turn": turn,
                    "label": region.label, "kind": region.kind, "score": float(region.score),
                    "area_ratio": float(region.area_ratio), "edit_type": edit_type,
                    "prompt": make_edit_prompt(region, edit_type, rng), "perceiver": name,
                    "prompt_source": "template",
                })
    if not rows:
        raise ValueError("perceive produced no regions: check perceive.min_area_ratio / max_area_ratio")
    regions = pd.DataFrame(rows, columns=REGION_COLUMNS)
    logger.info("perceived %d regions for %d samples", len(regions), regions["sample_id"].nunique())
    return {k: (lambda v=v: v) for k, v in masks.items()}, regions
