"""Inpaint: apply each sample's 1-3 region edits, one random generator per turn, and record
the pixel label map (which generator last touched each pixel) and per-turn provenance."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.generators import EditSpec, apply_edits, create_generator
from pipelines.perceive.nodes import sample_rng

logger = logging.getLogger(__name__)

SAMPLE_COLUMNS = [
    "sample_id", "base_id", "group_id", "base_kind", "n_turns", "generators", "last_generator",
    "edited_area_ratio", "edit_types", "region_kinds",
]
PROVENANCE_COLUMNS = [
    "sample_id", "turn", "generator", "label", "region_id", "kind", "edit_type", "prompt", "seed",
    "mask_area_ratio", "changed_pixel_ratio",
]


def generator_names(generators: Sequence[dict[str, Any]]) -> list[str]:
    """Class names in label order: label k (1-based) is ``generator_names(...)[k - 1]``."""
    names = [g["name"] for g in generators]
    if len(set(names)) != len(names):
        raise ValueError(f"generator names must be unique, got {names}")
    if not 1 <= len(names) <= 254:
        raise ValueError(f"between 1 and 254 generators are supported (uint8 label maps), got {len(names)}")
    return names


def build_generators(generators: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One instance per configured entry; ``generator`` (default: ``name``) is the registry key."""
    return {g["name"]: create_generator(g.get("generator", g["name"]), **(g.get("kwargs") or {})) for g in generators}


def draw_generators(rng: np.random.Generator, names: list[str], turns: int, distinct: bool) -> list[str]:
    """Generators for each turn; DiffSeg30k uses a different random model for every turn."""
    if distinct and turns <= len(names):
        return [names[i] for i in rng.choice(len(names), size=turns, replace=False)]
    return [names[i] for i in rng.integers(0, len(names), size=turns)]


def inpaint_samples(
    base_images: dict[str, Callable[[], np.ndarray]],
    base_manifest: pd.DataFrame,
    region_masks: dict[str, Callable[[], np.ndarray]],
    regions: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[dict[str, Callable[[], np.ndarray]], dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame]:
    """Edit every sample in ``regions`` turn by turn.

    Returns (edited_images: sample_id -> (H,W,3) uint8, label_maps: sample_id -> (H,W) uint8 with
    0 = untouched and k = 1-based index into ``params['generators']`` of the LAST generator that
    edited the pixel, samples table, provenance table with one row per turn). Pixels outside every
    edited region are bit-identical to the base image (checked in ``apply_edits``).
    """
    seed = int(params.get("seed", 0))
    names = generator_names(params["generators"])
    label_index = {name: i + 1 for i, name in enumerate(names)}
    generators = build_generators(params["generators"])
    manifest = base_manifest.set_index("base_id")
    edited, label_maps = {}, {}
    sample_rows, provenance_rows = [], []
    for sample_id, turns in tqdm(regions.sort_values(["sample_id", "turn"]).groupby("sample_id", sort=True),
                                 desc="inpaint", unit="sample"):
        base_id = turns["base_id"].iloc[0]
        base = base_images[base_id]()
        rng = sample_rng(seed, f"inpaint:{sample_id}")
        chosen = draw_generators(rng, names, len(turns), bool(params.get("distinct_generators_per_sample", True)))
        edits = [
            EditSpec(generator=gen, mask=region_masks[row.region_id]() > 127, prompt=row.prompt,
                     edit_type=row.edit_type, seed=int(rng.integers(0, 2**31 - 1)), region_id=row.region_id)
            for gen, row in zip(chosen, turns.itertuples())
        ]
        image, label_map, provenance = apply_edits(base, edits, generators, label_index)
        edited[sample_id], label_maps[sample_id] = image, label_map
        kinds = dict(zip(turns["region_id"], turns["kind"]))
        for record in provenance:
            provenance_rows.append({"sample_id": sample_id, "kind": kinds.get(record["region_id"], ""),
                                    **{k: record[k] for k in PROVENANCE_COLUMNS if k in record}})
        sample_rows.append({
            "sample_id": sample_id, "base_id": base_id, "group_id": manifest.at[base_id, "group_id"],
            "base_kind": manifest.at[base_id, "kind"], "n_turns": len(edits), "generators": ",".join(chosen),
            "last_generator": chosen[-1], "edited_area_ratio": float((label_map > 0).mean()),
            "edit_types": ",".join(turns["edit_type"]), "region_kinds": ",".join(turns["kind"]),
        })
    samples = pd.DataFrame(sample_rows, columns=SAMPLE_COLUMNS)
    provenance_table = pd.DataFrame(provenance_rows, columns=PROVENANCE_COLUMNS)
    logger.info("inpainted %d samples, %d edits; turns per sample: %s", len(samples), len(provenance_table),
                samples["n_turns"].value_counts().sort_index().to_dict())
    lazy = lambda arrays: {k: (lambda v=v: v) for k, v in arrays.items()}  # noqa: E731
    return lazy(edited), lazy(label_maps), samples, provenance_table
