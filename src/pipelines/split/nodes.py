"""Split: assign kept samples to train/val(/test) by source group, so no base image (nor any
other crop or view of the same photo) appears in two splits, and add unedited base images as
authentic negatives."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

SPLIT_COLUMNS = ["item_id", "split", "kind", "image_dataset", "image_key", "label_key", "base_id", "group_id", "last_generator"]


def check_ratios(names: list[str], ratios: list[float]) -> None:
    if len(names) != len(ratios):
        raise ValueError(f"split.names {names} and split.ratios {ratios} differ in length")
    if any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0, atol=1e-6):
        raise ValueError(f"split.ratios must be non-negative and sum to 1, got {ratios} (sum {sum(ratios)})")


def assign_groups(groups: list[str], names: list[str], ratios: list[float], seed: int) -> dict[str, str]:
    """Shuffle the groups with ``seed`` and cut them by ``ratios`` (largest-remainder rounding);
    every split with a positive ratio gets at least one group when there are enough groups."""
    check_ratios(names, ratios)
    order = list(np.random.default_rng(seed).permutation(sorted(groups)))
    n = len(order)
    raw = np.asarray(ratios, dtype=float) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    positive = [i for i, r in enumerate(ratios) if r > 0]
    if n >= len(positive):
        for i in positive:
            while counts[i] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[i] += 1
    assignment, start = {}, 0
    for name, count in zip(names, counts):
        for group in order[start:start + count]:
            assignment[group] = name
        start += count
    return assignment


def split_samples(filtered_samples: pd.DataFrame, base_manifest: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """One row per item: every kept edited sample, plus (``add_authentic``) every real base image
    as an authentic negative with an all-zero label map, in the split of its group.

    Seeds: 8:2 train/val (DiffSeg30k), 8:1:1 train/val/test (BR-Gen), always by real image.
    """
    names, ratios = list(params["names"]), list(params["ratios"])
    groups = sorted(set(base_manifest["group_id"]))
    assignment = assign_groups(groups, names, ratios, int(params.get("seed", 0)))
    kept = filtered_samples[filtered_samples["kept"]]
    rows = [{
        "item_id": s.sample_id, "split": assignment[s.group_id], "kind": "edited", "image_dataset": "edited_images",
        "image_key": s.sample_id, "label_key": s.sample_id, "base_id": s.base_id, "group_id": s.group_id,
        "last_generator": s.last_generator,
    } for s in kept.itertuples()]
    if params.get("add_authentic", True):
        authentic = base_manifest[base_manifest["kind"] == "real"]
        rows += [{
            "item_id": f"{b.base_id}-authentic", "split": assignment[b.group_id], "kind": "authentic",
            "image_dataset": "base_images", "image_key": b.base_id, "label_key": "", "base_id": b.base_id,
            "group_id": b.group_id, "last_generator": "",
        } for b in authentic.itertuples()]
    table = pd.DataFrame(rows, columns=SPLIT_COLUMNS)
    leaks = table.groupby("group_id")["split"].nunique()
    if (leaks > 1).any():  # cannot happen by construction; a guard against future edits
        raise AssertionError(f"groups in several splits: {list(leaks[leaks > 1].index)}")
    counts = table.groupby(["split", "kind"]).size().unstack(fill_value=0)
    logger.info("split counts:\n%s", counts.to_string())
    return table
