"""The tables a gate's suite checks: each stage boundary's outputs turned into plain DataFrames
(one row per image, region, pair of regions, label value, split item ...), so that every check is
an ordinary Great Expectations expectation on a column, written in conf/base/gates.yml.

A builder takes ``data`` (the finishing node's inputs and outputs, by dataset name; image
partitions are dicts of loaders) and the ``GateContext``; it must not raise on broken data: an
image that cannot be read becomes a row with ``readable = False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from pipelines.contract.ids import pool_of

# Photo sources whose bases are resized to the configured square (imports keep their size).
RESIZED_SOURCES = ("sample", "coco", "folder", "urls")


@dataclass
class GateContext:
    """What a gate knows besides the data: run parameters, the generator list (the label space)
    and the gate's own ``options`` from gates.yml."""

    params: dict[str, Any] = field(default_factory=dict)
    generators: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


def _load(loader: Callable[[], Any]) -> tuple[np.ndarray | None, str]:
    try:
        return np.asarray(loader()), ""
    except Exception as exc:  # the gate reports unreadable files; it never crashes on them
        return None, f"{type(exc).__name__}: {exc}"[:300]


# ----------------------------------------------------------------------------------------- ingest
def ingest_tables(data: dict[str, Any], ctx: GateContext) -> dict[str, pd.DataFrame]:
    """``images``: one row per base image (in the manifest or in the partition): readable, shape,
    dtype, pixel sha256 against the manifest's. ``manifest``: base_manifest as written."""
    manifest: pd.DataFrame = data["base_manifest"]
    images: dict[str, Callable] = data["base_images"]
    by_id = manifest.drop_duplicates("base_id").set_index("base_id") if len(manifest) else manifest
    ids = list(dict.fromkeys([*manifest["base_id"], *sorted(images)]))
    rows = []
    for base_id in ids:
        meta = by_id.loc[base_id] if base_id in by_id.index else None
        array, error = _load(images[base_id]) if base_id in images else (None, "no image in base_images")
        ok = array is not None and array.ndim in (2, 3)
        rows.append({
            "base_id": base_id,
            "source": meta["source"] if meta is not None else "",
            "resized": bool(meta is not None and meta["source"] in RESIZED_SOURCES),
            "in_manifest": meta is not None, "has_image": base_id in images,
            "readable": ok, "error": error,
            "height": int(array.shape[0]) if ok else None, "width": int(array.shape[1]) if ok else None,
            "channels": (int(array.shape[2]) if array.ndim == 3 else 1) if ok else None,
            "dtype": str(array.dtype) if ok else "",
            "manifest_height": int(meta["height"]) if meta is not None else None,
            "manifest_width": int(meta["width"]) if meta is not None else None,
            "pixel_sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest() if ok else "",
            "manifest_sha256": meta["sha256"] if meta is not None else "",
        })
    return {"images": pd.DataFrame(rows, columns=list(_INGEST_COLUMNS)), "manifest": manifest.copy()}


_INGEST_COLUMNS = ("base_id", "source", "resized", "in_manifest", "has_image", "readable", "error", "height", "width",
                   "channels", "dtype", "manifest_height", "manifest_width", "pixel_sha256", "manifest_sha256")


# --------------------------------------------------------------------------------------- perceive
def perceive_tables(data: dict[str, Any], ctx: GateContext) -> dict[str, pd.DataFrame]:
    """``regions``: the regions table plus each mask's measured area ratio; ``samples``: turns and
    distinct regions per sample and whether turns run 1..n; ``region_pairs``: IoU of every pair of
    one sample's distinct regions (an addition's removal and addition turns share one region, its
    ``edit_group``, and are one region here)."""
    regions: pd.DataFrame = data["regions"].copy()
    masks: dict[str, Callable] = data["region_masks"]
    if "edit_group" not in regions:
        regions["edit_group"] = regions["region_id"]
    arrays: dict[str, np.ndarray] = {}
    measured, has_mask = [], []
    for region_id in regions["region_id"]:
        array, _ = _load(masks[region_id]) if region_id in masks else (None, "")
        if array is not None and array.ndim == 2:
            arrays[region_id] = array > 127
            measured.append(float(arrays[region_id].mean()))
            has_mask.append(True)
        else:
            measured.append(None)
            has_mask.append(False)
    regions["has_mask"] = has_mask
    regions["mask_area_ratio"] = pd.array(measured, dtype="Float64")
    samples, pairs = [], []
    for sample_id, group in regions.sort_values("turn").groupby("sample_id", sort=True):
        turns = list(group["turn"])
        firsts = group.drop_duplicates("edit_group")
        samples.append({"sample_id": sample_id, "n_turns": len(group), "n_regions": len(firsts),
                        "turns_consecutive": turns == list(range(1, len(turns) + 1))})
        for a, b in combinations(list(firsts["region_id"]), 2):
            if a in arrays and b in arrays and arrays[a].shape == arrays[b].shape:
                union = np.logical_or(arrays[a], arrays[b]).sum()
                iou = float(np.logical_and(arrays[a], arrays[b]).sum() / union) if union else 0.0
                pairs.append({"sample_id": sample_id, "region_a": a, "region_b": b, "iou": iou})
    return {
        "regions": regions,
        "samples": pd.DataFrame(samples, columns=["sample_id", "n_turns", "n_regions", "turns_consecutive"]),
        "region_pairs": pd.DataFrame(pairs, columns=["sample_id", "region_a", "region_b", "iou"]),
    }


# ---------------------------------------------------------------------------------------- inpaint
def _value_counts(label: np.ndarray) -> list[tuple[Any, int]]:
    """(value, pixels) for every value present in a label map: a bincount for uint8 maps (no sort)."""
    if label.dtype == np.uint8:
        counts = np.bincount(label.ravel(), minlength=256)
        return [(int(v), int(counts[v])) for v in np.flatnonzero(counts)]
    found, counts = np.unique(label, return_counts=True)
    return list(zip(found, counts))


def inpaint_tables(data: dict[str, Any], ctx: GateContext) -> dict[str, pd.DataFrame]:
    """``items``: per sample, edited image and label map readable and of one size, turns recorded
    in provenance; ``label_values``: one row per (sample, label value present); ``provenance`` and
    ``samples`` as written."""
    samples: pd.DataFrame = data["samples"]
    provenance: pd.DataFrame = data["provenance"]
    edited: dict[str, Callable] = data["edited_images"]
    labels: dict[str, Callable] = data["label_maps"]
    turns = provenance.groupby("sample_id")["turn"].nunique().to_dict() if len(provenance) else {}
    items, values = [], []
    for row in samples.itertuples(index=False):
        image, image_error = _load(edited[row.sample_id]) if row.sample_id in edited else (None, "no edited image")
        label, label_error = _load(labels[row.sample_id]) if row.sample_id in labels else (None, "no label map")
        image_ok = image is not None and image.ndim == 3 and image.shape[2] == 3
        label_ok = label is not None and label.ndim == 2
        items.append({
            "sample_id": row.sample_id, "image_readable": image_ok, "label_readable": label_ok,
            "error": "; ".join(e for e in (image_error, label_error) if e),
            "image_height": int(image.shape[0]) if image_ok else None, "image_width": int(image.shape[1]) if image_ok else None,
            "label_height": int(label.shape[0]) if label_ok else None, "label_width": int(label.shape[1]) if label_ok else None,
            "edited_pixels": int((label > 0).sum()) if label_ok else None,
            "n_turns": int(row.n_turns), "provenance_turns": int(turns.get(row.sample_id, 0)),
        })
        if label_ok:
            values += [{"sample_id": row.sample_id, "label": int(v), "pixels": int(c)} for v, c in _value_counts(label)]
    provenance = provenance.copy()
    provenance["sample_known"] = provenance["sample_id"].isin(set(samples["sample_id"]))
    return {
        "items": pd.DataFrame(items, columns=["sample_id", "image_readable", "label_readable", "error", "image_height",
                                              "image_width", "label_height", "label_width", "edited_pixels", "n_turns",
                                              "provenance_turns"]),
        "label_values": pd.DataFrame(values, columns=["sample_id", "label", "pixels"]),
        "provenance": provenance,
        "samples": samples.copy(),
    }


# ----------------------------------------------------------------------------------------- filter
def filter_tables(data: dict[str, Any], ctx: GateContext) -> dict[str, pd.DataFrame]:
    """``scores``: one row per (sample, check) with the score and the scorer's valid range;
    ``samples``: filtered_samples with ``reason_consistent`` (kept <=> no drop reason);
    ``report``: the filter report's totals as one row."""
    table: pd.DataFrame = data["filtered_samples"]
    report: dict[str, Any] = data["filter_report"] or {}
    rows = []
    for check in report.get("checks", []):
        column = f"quality_{check['name']}"
        low, high = check.get("valid_range") or [None, None]
        for sample_id, score in zip(table["sample_id"], table[column] if column in table else [None] * len(table)):
            rows.append({"sample_id": sample_id, "check": check["name"],
                         "score": None if score is None or pd.isna(score) else float(score),
                         "low": -1e300 if low is None else float(low), "high": 1e300 if high is None else float(high)})
    samples = table.copy()
    samples["reason_consistent"] = samples["kept"] == (samples["drop_reason"].fillna("") == "")
    totals = {key: report.get(key) for key in ("n_samples", "n_kept", "n_dropped", "removal_rate")}
    totals["counts_consistent"] = report.get("n_samples") == len(table) and report.get("n_kept") == int(table["kept"].sum())
    totals["has_breakdowns"] = all(isinstance(report.get(k), dict) for k in ("per_generator", "per_edit_type", "per_reason"))
    return {
        "scores": pd.DataFrame(rows, columns=["sample_id", "check", "score", "low", "high"]).astype({"score": "Float64"}),
        "samples": samples,
        "report": pd.DataFrame([totals]),
    }


# ------------------------------------------------------------------------------------------ split
def split_tables(data: dict[str, Any], ctx: GateContext) -> dict[str, pd.DataFrame]:
    """Over every protocol table: ``items`` (all rows), ``base_splits`` / ``group_splits``
    (number of splits each base image / group appears in, per protocol), ``ratios`` (share of
    groups per split against the target, random protocols), ``train_generators`` (train items
    edited by each generator expected in train) and ``protocols`` (split_protocols as written)."""
    tables: dict[str, Any] = data["split_tables"]
    protocols: pd.DataFrame = data["split_protocols"]
    frames = []
    for name, table in sorted(tables.items()):
        frame = table() if callable(table) else table
        frames.append(frame.assign(protocol=name))
    items = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["item_id", "split", "kind", "base_id", "group_id", "generators", "protocol", "image_key", "label_key"])
    base_splits = items.groupby(["protocol", "base_id"])["split"].nunique().rename("n_splits").reset_index()
    group_splits = items.groupby(["protocol", "group_id"])["split"].nunique().rename("n_splits").reset_index()
    tolerance = float(ctx.options.get("ratio_tolerance", 0.05))
    ratio_rows, generator_rows = [], []
    for info in protocols.itertuples(index=False):
        if info.status != "ok" or info.protocol not in set(items["protocol"]):
            continue
        rows = items[items["protocol"] == info.protocol]
        names, ratios = list(info.split_names), [float(r) for r in info.ratios]
        if info.kind == "random" and ratios:  # the group cut; real-only pool photos are placed, not cut
            cut = rows[rows["base_id"].map(pool_of).isna()] if len(rows) else rows
            groups = cut.groupby("group_id")["split"].first()
            n = len(groups)
            for split, target in zip(names, ratios):
                share = float((groups == split).mean()) if n else 0.0
                # a cut of n groups cannot hit a ratio closer than 1/n
                ratio_rows.append({"protocol": info.protocol, "split": split, "n_groups": int((groups == split).sum()),
                                   "share": share, "target": float(target), "error": abs(share - float(target)),
                                   "allowed": tolerance + (1.0 / n if n else 1.0)})
        train = names[0] if names else "train"
        edited_train = rows[(rows["split"] == train) & (rows["kind"] == "edited")]
        present = [set(g) for g in edited_train["generators"]]
        if info.kind == "train_on_one":
            expected = [info.train_on]
        elif info.kind in ("leave_out", "transfer"):  # a GAN -> diffusion transfer trains without diffusion
            held = set(info.held_out)
            expected = [g for g in ctx.generators if g not in held]
        elif info.kind == "published":
            seen = set().union(*rows["generators"])
            expected = [g for g in ctx.generators if g in seen]
        else:
            expected = list(ctx.generators)
        for generator in expected:
            generator_rows.append({"protocol": info.protocol, "kind": info.kind, "generator": generator,
                                   "n_train_edited": sum(generator in p for p in present)})
    return {
        "items": items,
        "base_splits": base_splits,
        "group_splits": group_splits,
        "ratios": pd.DataFrame(ratio_rows, columns=["protocol", "split", "n_groups", "share", "target", "error", "allowed"]),
        "train_generators": pd.DataFrame(generator_rows, columns=["protocol", "kind", "generator", "n_train_edited"]),
        "protocols": protocols.copy(),
    }


@dataclass(frozen=True)
class GateSpec:
    """A gate runs after the node that outputs ``after``, on ``needs`` (found among that node's
    inputs and outputs); ``tables`` builds what its suite checks."""

    name: str
    after: str
    needs: tuple[str, ...]
    tables: Callable[[dict[str, Any], GateContext], dict[str, pd.DataFrame]]
    # gate table -> the contract table it is (pipelines.contract.schemas): its columns are checked first.
    contract: dict[str, str] = field(default_factory=dict)


GATES: dict[str, GateSpec] = {
    spec.name: spec for spec in (
        GateSpec("ingest", "base_manifest", ("base_images", "base_manifest"), ingest_tables,
                 {"manifest": "base_manifest"}),
        GateSpec("perceive", "regions", ("regions", "region_masks"), perceive_tables, {"regions": "regions"}),
        GateSpec("inpaint", "samples", ("edited_images", "label_maps", "samples", "provenance"), inpaint_tables,
                 {"samples": "samples", "provenance": "provenance"}),
        GateSpec("filter", "filter_report", ("filtered_samples", "filter_report"), filter_tables,
                 {"samples": "filtered_samples"}),
        GateSpec("split", "split_protocols", ("split_tables", "split_protocols"), split_tables,
                 {"protocols": "split_protocols"}),
    )
}
