"""Inpaint: apply each sample's 1-3 region edits, one random generator per turn, and record
the pixel label map (which generator last touched each pixel) and per-turn provenance.

The configured generator list (``globals.generators``) is the label space. Each entry is
``{name, generator, label, task, kwargs}``: ``name`` is what provenance records, ``generator``
the registry key (default: name), ``label`` the class it counts as (default: name; a LoRA
variant names its parent, as in DiffSeg30k's LoRA study), ``task`` is ``inpaint`` (default) or
``text-to-image`` (full-synthesis samples, OpenSDI). The classes are the distinct labels in
order of first appearance: label k in a label map is ``generator_names(...)[k - 1]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.generators import (
    EditSession,
    EditSpec,
    build_clip_candidate_scorer,
    create_generator,
    create_text_to_image,
    set_max_loaded,
    set_max_resident,
)
from pipelines.contract.ids import sample_rng
from pipelines.contract.labels import generator_entries, generator_labels
from pipelines.contract.schemas import PROVENANCE_COLUMNS, SAMPLE_COLUMNS
from pipelines.io.resume import WorkStore, fingerprint, normalise, result_params, split_done
from pipelines.io.shards import in_shard, parse_shard

logger = logging.getLogger(__name__)

FULL_SYNTHESIS = "full_synthesis"


def build_generators(generators: Sequence[dict[str, Any] | str]) -> dict[str, Any]:
    """One instance per configured entry: an inpainter (``create_generator``) or, for
    ``task: text-to-image``, a text-to-image generator (``create_text_to_image``)."""
    built = {}
    for entry in generator_entries(generators):
        factory = create_generator if entry["task"] == "inpaint" else create_text_to_image
        built[entry["name"]] = factory(entry["generator"], **entry["kwargs"])
    return built


def draw_generators(rng: np.random.Generator, names: list[str], turns: int, distinct: bool) -> list[str]:
    """Generators for each turn; DiffSeg30k uses a different random model for every turn."""
    if distinct and turns <= len(names):
        return [names[i] for i in rng.choice(len(names), size=turns, replace=False)]
    return [names[i] for i in rng.integers(0, len(names), size=turns)]


def _candidate_scorer(params: dict[str, Any]) -> tuple[int, Callable | None]:
    candidates = int(params.get("candidates_per_edit") or 1)
    if candidates < 1:
        raise ValueError(f"inpaint.candidates_per_edit must be >= 1, got {candidates}")
    if candidates == 1:
        return 1, None
    if not params.get("clip_model"):
        raise ValueError("inpaint.candidates_per_edit > 1 needs inpaint.clip_model (a CLIP checkpoint) to choose")
    scorer = build_clip_candidate_scorer(params["clip_model"], device=params.get("clip_device") or "cpu",
                                         dtype=params.get("clip_dtype") or "float32",
                                         region=params.get("clip_region") or "bbox")
    return candidates, scorer


def _provenance_row(sample_id: str, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    row = {"sample_id": sample_id, "kind": kind, **{k: record[k] for k in PROVENANCE_COLUMNS if k in record}}
    row["candidate_seeds"] = ",".join(str(s) for s in record.get("candidate_seeds") or [])
    row["candidate_scores"] = ",".join(f"{s:.4f}" for s in record.get("candidate_scores") or [])
    row["details"] = json.dumps(record.get("details") or {}, sort_keys=True)
    return row


def sample_turns(regions: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """sample_id -> its region rows as dicts in turn order, samples sorted by id. One pass over the
    table (a pandas group per sample costs ~1 ms each in ``itertuples`` / ``to_dict`` alone)."""
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for row in regions.sort_values(["sample_id", "turn"]).to_dict("records"):
        by_sample.setdefault(row["sample_id"], []).append(row)
    return by_sample


def _caption(manifest: pd.DataFrame, base_id: str, fallback: str) -> str:
    caption = manifest.at[base_id, "caption"] if "caption" in manifest.columns else ""
    return caption if isinstance(caption, str) and caption.strip() else fallback


def inpaint_samples(
    base_images: dict[str, Callable[[], np.ndarray]],
    base_manifest: pd.DataFrame,
    region_masks: dict[str, Callable[[], np.ndarray]],
    regions: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Callable[[], np.ndarray]], dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame]:
    """Edit every sample in ``regions`` turn by turn, then add the full-synthesis samples.

    Params: ``generators`` (the label space, see the module docstring), ``seed``,
    ``distinct_generators_per_sample``, ``chunk_size`` (samples whose turns run grouped by
    generator), ``candidates_per_edit`` (seeds per turn; > 1 needs
    ``clip_model``, the CLIP checkpoint that keeps the best, scored on ``clip_region`` "bbox" or
    "image" with ``clip_device`` / ``clip_dtype``), ``max_pipelines_on_device`` and
    ``max_pipelines_loaded`` (LRU caps of diffusers pipelines on an accelerator / in memory;
    null = no cap) and ``full_synthesis`` ({ratio,
    prompt}: that fraction of the bases also gets one wholly generated sample ``<base_id>-full``
    from a random ``text-to-image`` entry, prompted with the base's caption or ``prompt``).

    Returns (edited_images: sample_id -> (H,W,3) uint8, label_maps: sample_id -> (H,W) uint8 with
    0 = untouched and k = the class label (``generator_labels``) of the LAST generator that
    edited the pixel (a full-synthesis sample is all k), samples table, provenance table with one
    row per turn: configured name, label, registry entry and model, chosen seed, every candidate
    seed and score, and the generator's call details as JSON). Pixels outside every edited region
    are bit-identical to the base image (checked in ``apply_edits``).
    """
    seed = int(params.get("seed", 0))
    entries = generator_entries(params["generators"])
    label_index = generator_labels(entries)
    set_max_resident(params.get("max_pipelines_on_device"))
    set_max_loaded(params.get("max_pipelines_loaded"))
    generators = build_generators(entries)
    inpainters = [e["name"] for e in entries if e["task"] == "inpaint"]
    synthesizers = [e["name"] for e in entries if e["task"] == "text-to-image"]
    if len(regions) and not inpainters:
        raise ValueError("no inpainting generator configured (every entry has task: text-to-image)")
    candidates, scorer = _candidate_scorer(params)
    chunk_size = int(params.get("chunk_size") or 64)
    donor_users = [g for g in generators.values() if hasattr(g, "use_donors")]
    manifest = base_manifest.set_index("base_id")
    edited, label_maps = {}, {}
    sample_rows, provenance_rows = [], []
    # Every random choice is drawn per sample up front, so the order work is done in below
    # changes nothing in the results.
    plans = []
    shard = parse_shard(params.get("shard"))
    store = WorkStore(params.get("work_dir"), params.get("work_storage_options"))
    settings = result_params(params)
    fingerprints: dict[str, str] = {}
    for sample_id, turns in sample_turns(regions).items():
        base_id = turns[0]["base_id"]
        if not in_shard(base_id, shard):
            continue
        rng = sample_rng(seed, f"inpaint:{sample_id}")
        chosen = draw_generators(rng, inpainters, len(turns), bool(params.get("distinct_generators_per_sample", True)))
        edits = [
            EditSpec(generator=gen, mask=region_masks[row["region_id"]]() > 127, prompt=row["prompt"],
                     edit_type=row["edit_type"], seed=int(rng.integers(0, 2**31 - 1)), region_id=row["region_id"])
            for gen, row in zip(chosen, turns)
        ]
        plans.append((sample_id, turns, edits))
        if store.enabled:
            fingerprints[sample_id] = fingerprint(
                settings, sample_id, manifest.at[base_id, "sha256"] if "sha256" in manifest.columns else base_id,
                normalise(turns), *[edit.mask for edit in edits])
    # Resumption: samples already complete in the work store are loaded, not redone.
    done, _ = split_done(store, fingerprints.items())
    results: dict[str, tuple] = {}  # sample_id -> (image or loader, label map or loader, sample row, provenance rows)
    for sample_id, record in done.items():
        results[sample_id] = (store.lazy(sample_id, "image", record), store.lazy(sample_id, "label_map", record),
                              record["data"]["sample"], record["data"]["provenance"])
    if done:
        logger.info("inpaint: %d of %d samples already complete in %s; skipped", len(done), len(plans), store.url)
    plans = [plan for plan in plans if plan[0] not in done]
    progress = tqdm(total=sum(len(edits) for _, _, edits in plans), desc="inpaint", unit="edit")
    # Within a chunk of samples, turn t of every sample runs grouped by generator: a model is
    # used for all its edits in a row (one load / device move per chunk, not per sample).
    for start in range(0, len(plans), chunk_size):
        block = plans[start:start + chunk_size]
        sessions = {sample_id: EditSession(base_images[turns[0]["base_id"]](), generators, label_index,
                                           candidates=candidates, score_candidate=scorer)
                    for sample_id, turns, _ in block}
        for turn in range(max(len(edits) for _, _, edits in block)):
            for name in inpainters:
                for sample_id, turns, edits in block:
                    if turn < len(edits) and edits[turn].generator == name:
                        for generator in donor_users:  # splicing: any other base image may be the donor
                            generator.use_donors(base_images, exclude=turns[0]["base_id"])
                        sessions[sample_id].apply(edits[turn])
                        progress.update()
        for sample_id, turns, edits in block:
            image, label_map, provenance = sessions.pop(sample_id).finish()
            base_id = turns[0]["base_id"]
            kinds = {row["region_id"]: row["kind"] for row in turns}
            chosen = [edit.generator for edit in edits]
            sample_row = normalise({
                "sample_id": sample_id, "base_id": base_id, "group_id": manifest.at[base_id, "group_id"],
                "base_kind": manifest.at[base_id, "kind"], "n_turns": len(edits), "generators": ",".join(chosen),
                "last_generator": chosen[-1], "edited_area_ratio": float((label_map > 0).mean()),
                "edit_types": ",".join(row["edit_type"] for row in turns),
                "region_kinds": ",".join(row["kind"] for row in turns),
            })
            rows = normalise([_provenance_row(sample_id, kinds.get(r["region_id"], ""), r) for r in provenance])
            if store.enabled:  # written as soon as the sample is done; held in memory no longer
                record = store.save(sample_id, {"image": image, "label_map": label_map},
                                    {"sample": sample_row, "provenance": rows}, fingerprints[sample_id])
                image, label_map = store.lazy(sample_id, "image", record), store.lazy(sample_id, "label_map", record)
            results[sample_id] = (image, label_map, sample_row, rows)
    for sample_id in sorted(results):  # the order of an uninterrupted run, however the work was split
        image, label_map, sample_row, rows = results[sample_id]
        edited[sample_id], label_maps[sample_id] = image, label_map
        sample_rows.append(sample_row)
        provenance_rows += rows
    progress.close()
    synthesis = dict(params.get("full_synthesis") or {})
    ratio = float(synthesis.get("ratio") or 0.0)
    if ratio > 0 and not synthesizers:
        raise ValueError("inpaint.full_synthesis.ratio > 0 needs a generator entry with task: text-to-image")
    if ratio > 0:
        for base_id in tqdm(sorted(manifest.index), desc="full synthesis", unit="base"):
            rng = sample_rng(seed, f"synthesis:{base_id}")
            if rng.random() >= ratio or not in_shard(base_id, shard):
                continue
            name = synthesizers[int(rng.integers(0, len(synthesizers)))]
            sample_id = f"{base_id}-full"
            prompt = _caption(manifest, base_id, str(synthesis.get("prompt") or "a photo"))
            generator_seed = int(rng.integers(0, 2**31 - 1))
            fp = fingerprint(settings, sample_id, manifest.at[base_id, "sha256"] if "sha256" in manifest.columns
                             else base_id, prompt) if store.enabled else ""
            record = store.load_record(sample_id, fp)
            if record is not None:  # resumption: already complete
                edited[sample_id] = store.lazy(sample_id, "image", record)
                label_maps[sample_id] = store.lazy(sample_id, "label_map", record)
                provenance_rows += record["data"]["provenance"]
                sample_rows.append(record["data"]["sample"])
                continue
            height, width = base_images[base_id]().shape[:2]
            image = generators[name].generate(prompt, height, width, generator_seed)
            label = label_index[name]
            label_map = np.full((height, width), label, dtype=np.uint8)
            described = generators[name].describe()
            rows = normalise([_provenance_row(sample_id, "whole", {
                "turn": 1, "generator": name, "label": label, "region_id": "", "edit_type": FULL_SYNTHESIS,
                "prompt": prompt, "seed": generator_seed, "mask_area_ratio": 1.0, "changed_pixel_ratio": 1.0,
                "registry": described.get("registry", ""), "model": described.get("model", ""),
                "candidate_seeds": [generator_seed], "candidate_scores": [], "details": {},
            })])
            sample_row = normalise({
                "sample_id": sample_id, "base_id": base_id, "group_id": manifest.at[base_id, "group_id"],
                "base_kind": manifest.at[base_id, "kind"], "n_turns": 1, "generators": name, "last_generator": name,
                "edited_area_ratio": 1.0, "edit_types": FULL_SYNTHESIS, "region_kinds": "whole",
            })
            if store.enabled:
                record = store.save(sample_id, {"image": image, "label_map": label_map},
                                    {"sample": sample_row, "provenance": rows}, fp)
                image, label_map = store.lazy(sample_id, "image", record), store.lazy(sample_id, "label_map", record)
            edited[sample_id], label_maps[sample_id] = image, label_map
            provenance_rows += rows
            sample_rows.append(sample_row)
    samples = pd.DataFrame(sample_rows, columns=SAMPLE_COLUMNS)
    provenance_table = pd.DataFrame(provenance_rows, columns=PROVENANCE_COLUMNS)
    logger.info("inpainted %d samples, %d edits; turns per sample: %s", len(samples), len(provenance_table),
                samples["n_turns"].value_counts().sort_index().to_dict())
    lazy = lambda arrays: {k: v if callable(v) else (lambda v=v: v) for k, v in arrays.items()}  # noqa: E731
    return lazy(edited), lazy(label_maps), samples, provenance_table
