"""Perceive: propose editable regions per base image, keep 1-3 per edited sample, write prompts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.perception import (
    RegionBalancer,
    VLMParseError,
    choose_region_count,
    create_perceiver,
    create_vlm,
    merge_names,
    plan_edit_types,
    select_regions,
    write_region_edits,
)
from pipelines.contract.ids import sample_rng
from pipelines.contract.rle import decode_rle
from pipelines.contract.schemas import REGION_COLUMNS
from pipelines.io.resume import WorkStore, fingerprint, normalise, result_params

logger = logging.getLogger(__name__)

def _annotations_for(base_id: str, table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table[table["base_id"] == base_id] if len(table) else table
    return [
        {"category": r.category, "supercategory": r.supercategory, "isthing": bool(r.isthing), "mask": decode_rle(r.rle)}
        for r in rows.itertuples()
    ]


def build_vlms(entries: Sequence[dict[str, Any]]) -> dict[str, tuple[Any, float]]:
    """``perceive.vlms`` -> {name: (adapter, weight)}. Each entry: ``name`` (recorded in
    ``prompt_source``), ``vlm`` (registry key, default ``name``), ``kwargs`` (model id or folder,
    device, dtype, ...), ``weight`` (relative draw weight, default 1). Nothing is loaded here."""
    vlms: dict[str, tuple[Any, float]] = {}
    for entry in entries or []:
        name = entry["name"]
        if name in vlms:
            raise ValueError(f"VLM names must be unique; {name!r} appears twice in perceive.vlms")
        weight = float(entry.get("weight", 1.0))
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"VLM {name!r}: weight must be > 0, got {weight}")
        vlms[name] = (create_vlm(entry.get("vlm", name), **(entry.get("kwargs") or {})), weight)
    return vlms


def draw_vlm(seed: int, key: str, vlms: dict[str, tuple[Any, float]]) -> str | None:
    """One VLM name drawn by weight with its own rng stream (so configuring VLMs changes no
    other draw); None when none is configured. OpenSDI: several VLMs imitate several users."""
    if not vlms:
        return None
    names = list(vlms)
    weights = np.array([vlms[n][1] for n in names])
    return names[int(sample_rng(seed, f"vlm:{key}").choice(len(names), p=weights / weights.sum()))]


def _vlm_seed(seed: int, key: str) -> int:
    """A sampling seed per item for VLMs that sample (greedy decoding ignores it)."""
    return int(sample_rng(seed, f"vlm-seed:{key}").integers(2**31 - 1))


def perceive_regions(
    base_images: dict[str, Callable[[], np.ndarray]],
    base_annotations: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame]:
    """For each base image and each of ``variants_per_base`` samples: propose regions, order
    them by score and dataset-level balance, drop area outliers and IoU > ``iou_threshold``
    duplicates, and spend a turn budget of 1-3 (``turn_count_weights``, seed 1:4:5) on edits.

    An addition takes two turns on one region (removal, then addition; two rows sharing
    ``edit_group``), so a sample has 1-3 turns and 1-3 regions. Prompts come from a VLM drawn per
    sample from ``vlms`` or from templates (``prompt_source`` says which); stuff / background
    attribute changes follow BR-Gen's description + perturbation (``perturbation.p``). With
    ``object_names_from_vlm`` a perceiver that grounds names (``grounded_sam``) also grounds the
    objects a VLM lists for the image (DiffSeg30k).

    Returns (region_masks: region_id -> (H,W) uint8 0/255, regions table; one row per turn, in
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

    vlms = build_vlms(params.get("vlms") or [])
    names_from_vlm = bool(params.get("object_names_from_vlm", False))
    balance = params.get("balance") or {}
    balancer = RegionBalancer(**balance)
    perturbation = params.get("perturbation") or {}
    perturbation_p = perturbation.get("p", 0.5)
    perturb_kinds = tuple(perturbation.get("kinds", ("stuff", "background")))
    count_weights, type_weights = params["turn_count_weights"], params["edit_type_weights"]

    masks: dict[str, np.ndarray] = {}
    rows = []
    # Resumption (pipelines.io.resume): each base's regions go to the work store when done. The
    # balancer's counts carry over from base to base, so a base's fingerprint chains those of
    # every base before it, and a skipped base replays its choices into the counts.
    store = WorkStore(params.get("work_dir"), params.get("work_storage_options"))
    chain = fingerprint(result_params(params))
    for base_id in tqdm(sorted(base_images), desc="perceive", unit="image"):
        image = base_images[base_id]()
        annotations = _annotations_for(base_id, base_annotations)
        if store.enabled:
            chain = fingerprint(chain, base_id, image, [[a["category"], a["supercategory"], a["isthing"]] for a in annotations],
                                *[a["mask"] for a in annotations])
            record = store.load_record(base_id, chain)
            if record is not None:
                previous = None
                for row in record["data"]["rows"]:
                    if row["edit_group"] != previous:  # what balancer.record(region) counted, once per region
                        balancer.category_counts["background" if row["kind"] == "background" else row["label"]] += 1
                        balancer.bucket_counts[row["area_bucket"]] += 1
                    previous = row["edit_group"]
                    rows.append(row)
                    masks[row["region_id"]] = store.lazy(base_id, row["region_id"], record)
                continue
        first_row = len(rows)
        name, perceiver = perceiver_for(bool(annotations))
        object_names, names_source = None, name
        extra = {}
        if perceiver.accepts_object_names:
            lister = draw_vlm(seed, f"list:{base_id}", vlms) if names_from_vlm else None
            if lister is not None:
                try:
                    object_names = vlms[lister][0].list_objects(image, seed=_vlm_seed(seed, base_id))
                    names_source = f"vlm:{lister}"
                except VLMParseError as error:
                    logger.info("%s: %s; grounding the vocabulary only", base_id, error)
                    names_source = f"vlm:{lister}:parse_failed->vocabulary"
            extra["object_names"] = object_names
        listed = set(merge_names(object_names or ()))  # as the perceiver normalised them
        candidates = perceiver.propose(image, annotations or None, **extra)
        for variant in range(int(params.get("variants_per_base", 1))):
            sample_id = f"{base_id}-v{variant}"
            rng = sample_rng(seed, sample_id)
            turn_budget = choose_region_count(rng, count_weights)
            chosen = select_regions(
                balancer.order(candidates, rng), turn_budget,
                iou_threshold=params["iou_threshold"],
                min_area_ratio=params["min_area_ratio"], max_area_ratio=params["max_area_ratio"],
            )
            plan = plan_edit_types(rng, len(chosen), turn_budget, type_weights)
            if not plan:
                logger.warning("%s: no region within area bounds (or no edit fits); no sample made", sample_id)
                continue
            vlm_name = draw_vlm(seed, f"prompt:{sample_id}", vlms)
            vlm = vlms[vlm_name][0] if vlm_name else None
            turn = 0
            for group, (region, edit_type) in enumerate(zip(chosen, plan), start=1):
                balancer.record(region)
                if region.kind == "background" or not perceiver.accepts_object_names:
                    label_source = name
                elif region.label in listed:
                    label_source = names_source
                else:
                    label_source = names_source if names_source.endswith("->vocabulary") else "vocabulary"
                edits = write_region_edits(
                    image, region, edit_type, rng, vlm=vlm, vlm_name=vlm_name or "",
                    perturbation_p=perturbation_p, perturb_kinds=perturb_kinds,
                    seed=_vlm_seed(seed, f"{sample_id}-g{group}"),
                )
                mask = region.mask.astype(np.uint8) * 255
                for edit in edits:
                    turn += 1
                    region_id = f"{sample_id}-t{turn}"
                    masks[region_id] = mask
                    rows.append({
                        "region_id": region_id, "sample_id": sample_id, "base_id": base_id, "turn": turn,
                        "label": region.label, "kind": region.kind, "score": float(region.score),
                        "area_ratio": float(region.area_ratio), "area_bucket": balancer.bucket(region),
                        "edit_group": f"{sample_id}-g{group}", "edit_type": edit.edit_type,
                        "description": edit.description, "perturbed": edit.perturbed, "prompt": edit.prompt,
                        "perceiver": name, "label_source": label_source, "prompt_source": edit.prompt_source,
                    })
        rows[first_row:] = normalise(rows[first_row:])
        if store.enabled:
            done = [row["region_id"] for row in rows[first_row:]]
            record = store.save(base_id, {r: masks[r] for r in done}, {"rows": rows[first_row:]}, chain, compress=True)
            masks.update({r: store.lazy(base_id, r, record) for r in done})
    if not rows:
        raise ValueError("perceive produced no regions: check perceive.min_area_ratio / max_area_ratio")
    regions = pd.DataFrame(rows, columns=REGION_COLUMNS)
    logger.info("perceived %d turns on %d regions for %d samples; prompt sources %s", len(regions),
                regions["edit_group"].nunique(), regions["sample_id"].nunique(),
                dict(Counter(regions["prompt_source"])))
    return {k: v if callable(v) else (lambda v=v: v) for k, v in masks.items()}, regions
