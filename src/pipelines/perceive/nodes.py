"""Perceive: propose editable regions per base image, keep 1-3 per edited sample, write prompts."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.cache import ModelCache
from models.perception import (
    AddSizing,
    RegionBalancer,
    VLMParseError,
    choose_region_count,
    create_perceiver,
    create_vlm,
    ground_with,
    merge_names,
    plan_edit_types,
    select_regions,
    write_add_edit,
    write_region_edits,
)
from pipelines.contract.ids import sample_rng
from pipelines.contract.rle import decode_rle
from pipelines.contract.ids import edit_group_id, pool_of, region_id, sample_id
from pipelines.contract.params import PerceiveParams, params_of
from pipelines.contract.schemas import table
from pipelines.io.resumable import ItemResult, resumable_map
from pipelines.io.resume import WorkStore, fingerprint, normalise, result_params

logger = logging.getLogger(__name__)

def _annotations_for(base_id: str, table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table[table["base_id"] == base_id] if len(table) else table
    return [
        {"category": r.category, "supercategory": r.supercategory, "isthing": bool(r.isthing), "mask": decode_rle(r.rle)}
        for r in rows.itertuples()
    ]


def vlm_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    """The model cache key of a ``perceive.vlms`` entry's adapter."""
    return ModelCache.key("vlm", entry.get("vlm", entry["name"]), entry.get("kwargs"))


def build_vlms(entries: Sequence[dict[str, Any]], models: ModelCache) -> dict[str, tuple[Any, float]]:
    """``perceive.vlms`` -> {name: (adapter, weight)}. Each entry: ``name`` (recorded in
    ``prompt_source``), ``vlm`` (registry key, default ``name``), ``kwargs`` (model id or folder,
    device, dtype, ...), ``weight`` (relative draw weight, default 1). Adapters come from
    ``models`` (``vlm_key``), built there if absent; an adapter loads its weights on first use."""
    vlms: dict[str, tuple[Any, float]] = {}
    for entry in entries or []:
        name = entry["name"]
        if name in vlms:
            raise ValueError(f"VLM names must be unique; {name!r} appears twice in perceive.vlms")
        weight = float(entry.get("weight", 1.0))
        if not np.isfinite(weight) or weight <= 0:
            raise ValueError(f"VLM {name!r}: weight must be > 0, got {weight}")
        vlms[name] = (models.get(vlm_key(entry), lambda e=entry: create_vlm(e.get("vlm", e["name"]), **(e.get("kwargs") or {}))),
                      weight)
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


class _Perception:
    """What every base shares: the perceivers (built on first use), the VLMs, and the region
    balancer whose counts carry over from base to base (so bases run in id order)."""

    def __init__(self, params: PerceiveParams, models: ModelCache):
        self.params = params
        self.models = models
        self.seed = params.seed
        self.perceivers: dict[str, Any] = {}
        self.vlms = build_vlms(params.vlms, models)
        self.names_from_vlm = params.object_names_from_vlm
        self.balancer = RegionBalancer(**params.balance.model_dump())
        self.perturbation_p = params.perturbation.p
        self.perturb_kinds = tuple(params.perturbation.kinds)
        add = params.add
        self.add_sizing = AddSizing(size_range=tuple(add.size_range), beside_size_range=tuple(add.beside_size_range),
                                    aspect_range=tuple(add.aspect_range), min_area_ratio=params.min_area_ratio,
                                    max_area_ratio=add.max_area_ratio)

    def perceiver_for(self, has_annotations: bool) -> tuple[str, Any]:
        name = self.params.perceiver
        if name == "auto":
            name = "annotations" if has_annotations else self.params.fallback_perceiver
        if name not in self.perceivers:
            kwargs = self.params.perceiver_kwargs.get(name, {})
            self.perceivers[name] = self.models.get(ModelCache.key("perceiver", name, kwargs),
                                                    lambda: create_perceiver(name, **kwargs))
        return name, self.perceivers[name]

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Count a resumed base's regions into the balancer, as ``balancer.record`` did, once per region."""
        previous = None
        for row in rows:
            if row["edit_group"] != previous:
                self.balancer.category_counts["background" if row["kind"] == "background" else row["label"]] += 1
                self.balancer.bucket_counts[row["area_bucket"]] += 1
            previous = row["edit_group"]

    def object_names(self, base_id: str, image: np.ndarray, perceiver_name: str) -> tuple[list[str] | None, str]:
        """DiffSeg30k: the objects a VLM lists for the image, to ground (None: the vocabulary only)."""
        lister = draw_vlm(self.seed, f"list:{base_id}", self.vlms) if self.names_from_vlm else None
        if lister is None:
            return None, perceiver_name
        try:
            return self.vlms[lister][0].list_objects(image, seed=_vlm_seed(self.seed, base_id)), f"vlm:{lister}"
        except VLMParseError as error:
            logger.info("%s: %s; grounding the vocabulary only", base_id, error)
            return None, f"vlm:{lister}:parse_failed->vocabulary"


def eligible_regions(candidates: list, region_kinds: list[str] | None, max_area_ratio: float,
                     max_area_ratio_by_kind: dict[str, float]) -> tuple[list, float]:
    """(the candidates a sample may edit, the area cap ``select_regions`` then applies).

    BR-Gen forges only stuff and background regions (``region_kinds``; None = every kind), and its
    background masks reach the whole image (Table 7's 60-100 % columns): a kind listed in
    ``max_area_ratio_by_kind`` is capped by its own value instead of ``max_area_ratio``. Without
    per-kind caps the list passes unchanged and the cap is ``max_area_ratio`` (the default run).
    """
    kinds = None if region_kinds is None else set(region_kinds)
    kept = [r for r in candidates if kinds is None or r.kind in kinds]
    if not max_area_ratio_by_kind:
        return kept, max_area_ratio
    kept = [r for r in kept if r.area_ratio <= max_area_ratio_by_kind.get(r.kind, max_area_ratio)]
    return kept, max([max_area_ratio, *max_area_ratio_by_kind.values()])


def _label_source(region: Any, name: str, accepts_names: bool, listed: set[str], names_source: str) -> str:
    if region.kind == "background" or not accepts_names:
        return name
    if region.label in listed:
        return names_source
    return names_source if names_source.endswith("->vocabulary") else "vocabulary"


def _variant(ctx: _Perception, base_id: str, variant: int, image: np.ndarray, candidates: list, perceiver: tuple,
             listed: set[str], names_source: str, masks: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One edited sample of a base: its regions, edit types and prompts, one row per turn."""
    params, (name, model) = ctx.params, perceiver
    sid = sample_id(base_id, variant)
    rng = sample_rng(ctx.seed, sid)
    turn_budget = choose_region_count(rng, params.turn_count_weights)
    # the candidates are already of perceive.region_kinds (_perceive_base); BR-Gen: one kind per variant
    kinds = [params.kind_per_variant[variant % len(params.kind_per_variant)]] if params.kind_per_variant else None
    eligible, max_area = eligible_regions(candidates, kinds, params.max_area_ratio, params.max_area_ratio_by_kind)
    chosen = select_regions(ctx.balancer.order(eligible, rng), turn_budget, iou_threshold=params.iou_threshold,
                            min_area_ratio=params.min_area_ratio, max_area_ratio=max_area)
    plan = plan_edit_types(rng, len(chosen), turn_budget, params.edit_type_weights)
    if not plan:
        logger.warning("%s: no region within area bounds (or no edit fits); no sample made", sid)
        return []
    vlm_name = draw_vlm(ctx.seed, f"prompt:{sid}", ctx.vlms)
    vlm = ctx.vlms[vlm_name][0] if vlm_name else None
    rows: list[dict[str, Any]] = []
    for group, (region, edit_type) in enumerate(zip(chosen, plan), start=1):
        seed = _vlm_seed(ctx.seed, edit_group_id(sid, group))
        if edit_type == "add":  # OpenSDI: a new object on a grounded place; the drawn region is the fallback place
            added = write_add_edit(image, region, rng, vlm=vlm, vlm_name=vlm_name or "", ground=ground_with(model),
                                   sizing=ctx.add_sizing, seed=seed, source=name)
            region, edits, label_source = added.region, [added.turn], added.placement
        else:
            label_source = _label_source(region, name, model.accepts_object_names, listed, names_source)
            edits = write_region_edits(image, region, edit_type, rng, vlm=vlm, vlm_name=vlm_name or "",
                                       perturbation_p=ctx.perturbation_p, perturb_kinds=ctx.perturb_kinds, seed=seed)
        ctx.balancer.record(region)
        mask = region.mask.astype(np.uint8) * 255
        for edit in edits:
            rid = region_id(sid, len(rows) + 1)
            masks[rid] = mask
            rows.append({
                "region_id": rid, "sample_id": sid, "base_id": base_id, "turn": len(rows) + 1,
                "label": region.label, "kind": region.kind, "score": float(region.score),
                "area_ratio": float(region.area_ratio), "area_bucket": ctx.balancer.bucket(region),
                "edit_group": edit_group_id(sid, group), "edit_type": edit.edit_type,
                "description": edit.description, "perturbed": edit.perturbed, "prompt": edit.prompt,
                "perceiver": name, "label_source": label_source, "prompt_source": edit.prompt_source,
            })
    return rows


def _perceive_base(ctx: _Perception, base_id: str, image: np.ndarray, annotations: list[dict[str, Any]]):
    """Propose a base's regions once and make its ``variants_per_base`` samples: (masks, rows)."""
    name, perceiver = ctx.perceiver_for(bool(annotations))
    object_names, names_source, extra = None, name, {}
    if perceiver.accepts_object_names:
        object_names, names_source = ctx.object_names(base_id, image, name)
        extra["object_names"] = object_names
    listed = set(merge_names(object_names or ()))  # as the perceiver normalised them
    if perceiver.accepts_object_names and not object_names and not getattr(perceiver, "vocabulary", True):
        logger.warning("%s: nothing to ground (no readable VLM object list, empty vocabulary): no sample", base_id)
        return {}, []
    candidates = perceiver.propose(image, annotations or None, **extra)
    if ctx.params.region_kinds is not None:
        candidates = [c for c in candidates if c.kind in ctx.params.region_kinds]
    masks: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for variant in range(ctx.params.variants_per_base):
        rows += _variant(ctx, base_id, variant, image, candidates, (name, perceiver), listed, names_source, masks)
    return masks, normalise(rows)


def run_perception(
    base_images: dict[str, Callable[[], np.ndarray]],
    base_annotations: pd.DataFrame,
    params: dict[str, Any],
    model_cache: ModelCache,
) -> dict[str, ItemResult]:
    """For each base image (in id order) and each of ``variants_per_base`` samples: propose regions,
    order them by score and dataset-level balance, drop area outliers and IoU > ``iou_threshold``
    duplicates, and spend a turn budget of 1-3 (``turn_count_weights``, seed 1:4:5) on edits.

    An addition takes two turns on one region (removal, then addition; two rows sharing
    ``edit_group``), so a sample has 1-3 turns and 1-3 regions. An "add" (OpenSDI) takes one turn:
    the VLM proposes an object and a place, the perceiver grounds the place (``ground_phrase``) and
    the object's mask is sized on it (``perceive.add``; models.perception.additions); its row's
    ``label`` is the object, ``description`` the instruction and ``label_source`` the placement
    ("grounded:<place>" or the recorded fallback to the drawn region). Prompts come from a VLM drawn per
    sample from ``vlms`` or from templates (``prompt_source`` says which); stuff / background
    attribute changes follow BR-Gen's description + perturbation (``perturbation.p``). With
    ``object_names_from_vlm`` a perceiver that grounds names (``grounded_sam``) also grounds the
    objects a VLM lists for the image (DiffSeg30k). Perceivers and VLM adapters come from
    ``model_cache`` (keys ``ModelCache.key("perceiver", name, kwargs)`` and ``vlm_key``).

    Returns base_id -> ItemResult(arrays: region_id -> (H,W) uint8 0/255 mask, data {"rows": one
    row per turn}). Resumable (``work_dir``): the balancer's counts carry over from base to base,
    so a base's fingerprint chains those of every base before it, and a resumed base replays its
    choices into the counts.
    """
    ctx = _Perception(params_of(PerceiveParams, params), model_cache)
    store = WorkStore(ctx.params.work_dir, ctx.params.work_storage_options)

    def items():
        chain = fingerprint(result_params(params))
        # a real-only pool photo (ingest.real_pools) is never edited: no regions, no sample
        for base_id in tqdm(sorted(b for b in base_images if pool_of(b) is None), desc="perceive", unit="image"):
            image = base_images[base_id]()
            annotations = _annotations_for(base_id, base_annotations)
            if store.enabled:
                chain = fingerprint(chain, base_id, image, [[a["category"], a["supercategory"], a["isthing"]]
                                                            for a in annotations], *[a["mask"] for a in annotations])
            yield base_id, chain if store.enabled else "", (image, annotations)

    def compute(block):
        for base_id, (image, annotations) in block:
            masks, rows = _perceive_base(ctx, base_id, image, annotations)
            yield base_id, masks, {"rows": rows}

    return resumable_map(store, items(), compute, compress=True,
                         on_resumed=lambda _, data: ctx.replay(data["rows"]))


def assemble_regions(results: dict[str, ItemResult]) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame]:
    """(region_masks: region_id -> loader of a (H,W) uint8 0/255 mask, regions table: one row per
    turn, bases in id order). Raises ValueError when no base gave a region."""
    rows = [row for base_id in sorted(results) for row in results[base_id].data["rows"]]
    if not rows:
        raise ValueError("perceive produced no regions: check perceive.min_area_ratio / max_area_ratio")
    masks = {rid: loader for base_id in sorted(results) for rid, loader in results[base_id].arrays.items()}
    regions = table("regions", rows)
    logger.info("perceived %d turns on %d regions for %d samples; prompt sources %s", len(regions),
                regions["edit_group"].nunique(), regions["sample_id"].nunique(),
                dict(Counter(regions["prompt_source"])))
    return {row["region_id"]: masks[row["region_id"]] for row in rows}, regions
