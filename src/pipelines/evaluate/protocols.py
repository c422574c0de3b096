"""Which evaluation images belong to which group: the bookkeeping behind the seeds' breakdowns
(per generator, per turn count, per mask-area bucket, per region kind), the cross-generator
protocol and the LoRA-as-parent protocol. Pure pandas: rows in, positions out.

A group is always "its edited images + every authentic image of the split" (``include_authentic``,
on by default): authentic images are the negatives that make image-level AP / AUC / R@50 (real)
defined for each group, and they are the same images in every group, so groups differ only in
which edits they contain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

PROTOCOLS = ("in_domain", "breakdowns", "robustness", "cross_generator", "lora_as_parent", "brgen")
BREAKDOWNS = ("generator", "turns", "area_bucket", "region_kind")
# OpenSDI's pixel-level test sets: each class's LOCAL edits only (its official test.py keeps the
# "partial" fakes), no authentic image; asked for in ``by`` like the others.
LOCAL_BREAKDOWN = "generator_local"
MEMBERSHIPS = ("last", "any", "all")


def selected_protocols(run: Any) -> list[str]:
    """The protocols to run, from ``evaluate.run``: a list, one name, or names joined by ``+``
    (``kedro run --params evaluate.run=robustness`` or ``evaluate.run=breakdowns+robustness``; a
    comma cannot be used there, Kedro splits ``--params`` on commas). None or ``all`` = every
    protocol. ``in_domain`` is always included: every other protocol is read against it.

    Raises:
        ValueError: an unknown protocol name (the message lists the known ones).
    """
    if run is None or run == "all":
        names = list(PROTOCOLS)
    elif isinstance(run, str):
        names = [name.strip() for name in run.replace(" ", "+").split("+") if name.strip()]
    else:
        names = [str(name) for name in run]
    unknown = sorted(set(names) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown evaluation protocol(s) {unknown}; known: {list(PROTOCOLS)}")
    return [name for name in PROTOCOLS if name in names or name == "in_domain"]


def item_table(rows: pd.DataFrame, samples: pd.DataFrame, provenance: pd.DataFrame,
               classes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per evaluation item (same order as ``rows``, the split table's rows) with what the
    breakdowns need: kind, generators (configured names, list in turn order), classes (each turn's
    class label: ``classes[name]``, the name itself when absent or ``classes`` is None),
    last_generator, n_turns, edited_area_ratio, region_kinds (list, in turn order). Authentic
    items have empty lists."""
    turns = provenance.sort_values(["sample_id", "turn"]).groupby("sample_id", sort=False)
    generators = turns["generator"].agg(list)
    kinds = turns["kind"].agg(list)
    areas = samples.set_index("sample_id")["edited_area_ratio"] if "edited_area_ratio" in samples else pd.Series(dtype=float)
    out = pd.DataFrame({"item_id": rows["item_id"].to_numpy(), "kind": rows["kind"].to_numpy()})
    edited = out["kind"] == "edited"
    keys = rows["label_key"].where(edited, "").to_numpy()
    out["generators"] = [list(generators.get(k, [])) if e else [] for k, e in zip(keys, edited)]
    # The split table's last_generator is the fallback when provenance lacks a sample.
    fallback = rows["last_generator"].fillna("").to_numpy() if "last_generator" in rows else [""] * len(rows)
    out["generators"] = [g if g or not e or not f else [f] for g, e, f in zip(out["generators"], edited, fallback)]
    out["last_generator"] = [g[-1] if g else "" for g in out["generators"]]
    out["classes"] = [[(classes or {}).get(g, g) for g in gens] for gens in out["generators"]]
    out["n_turns"] = [len(g) for g in out["generators"]]
    out["edited_area_ratio"] = [float(areas.get(k, np.nan)) if e else 0.0 for k, e in zip(keys, edited)]
    out["region_kinds"] = [list(kinds.get(k, [])) if e else [] for k, e in zip(keys, edited)]
    return out


def _members(values: list[str], wanted: set[str], membership: str) -> bool:
    if not values:
        return False
    if membership == "last":
        return values[-1] in wanted
    if membership == "any":
        return any(v in wanted for v in values)
    if membership == "all":
        return all(v in wanted for v in values)
    raise ValueError(f"membership must be one of {MEMBERSHIPS}, got {membership!r}")


def _with_authentic(items: pd.DataFrame, edited_positions: list[int], include_authentic: bool) -> list[int]:
    authentic = list(np.flatnonzero((items["kind"] == "authentic").to_numpy())) if include_authentic else []
    return sorted(set(edited_positions) | set(authentic))


def area_bucket_labels(edges: list[float]) -> list[str]:
    """Names of the buckets [0, e1), [e1, e2), ..., [e_{k-1}, e_k] as percentages: "0-20%", ..."""
    bounds = [0.0, *edges]
    return [f"{lo * 100:.0f}-{hi * 100:.0f}%" for lo, hi in zip(bounds[:-1], bounds[1:])]


def breakdown_groups(items: pd.DataFrame, by: str, *, membership: str = "last", area_edges: list[float] | None = None,
                     include_authentic: bool | str = True, column: str = "classes") -> dict[str, list[int]]:
    """Positions (into ``items``) of each group of the breakdown ``by``.

    - ``generator``: by class label (``column`` "classes", the default: every sample a generator
      made, local edit or full synthesis, under its ``label``) or by configured name
      (``column`` "generators", the LoRA protocol's variants); last turn's generator
      (``membership: last``), every generator the sample went through (``any``), or only
      samples made by a single generator throughout (``all``).
    - ``turns``: by number of edit turns (1, 2, 3).
    - ``area_bucket``: by the edited area ratio of the sample, buckets ending at ``area_edges``
      (BR-Gen Table 7: 0.2, 0.4, 0.6, 0.8, 1.0).
    - ``region_kind``: thing / stuff / background of the last turn's region (``last``), of any
      turn (``any``), or of every turn (``all``).

    - ``generator_local``: ``generator``'s groups restricted to local edits (no full-synthesis
      sample, whose region kind is "whole"), without authentic images (OpenSDI Table 3).

    ``include_authentic``: True adds every authentic image to each group; "partition" (``by``
    generator only) deals them out (``partition_authentic``). Groups with no edited image are
    left out. Raises ValueError for an unknown ``by``.
    """
    edited = items.index[items["kind"] == "edited"]
    groups: dict[str, list[int]] = {}

    def add(name: str, position: int) -> None:
        groups.setdefault(name, []).append(position)

    if by == "generator":
        column = column if column in items else "generators"
        names = sorted({g for gens in items.loc[edited, column] for g in gens})
        for name in names:
            for position in edited:
                gens = items.at[position, column]
                if (membership == "all" and set(gens) == {name}) or (membership != "all" and _members(gens, {name}, membership)):
                    add(name, position)
    elif by == "turns":
        for position in edited:
            add(str(int(items.at[position, "n_turns"])), position)
        groups = dict(sorted(groups.items(), key=lambda kv: int(kv[0])))
    elif by == "area_bucket":
        edges = sorted(float(e) for e in (area_edges or [0.2, 0.4, 0.6, 0.8, 1.0]))
        labels = area_bucket_labels(edges)
        for position in edited:
            ratio = items.at[position, "edited_area_ratio"]
            if np.isnan(ratio):
                continue
            index = min(int(np.searchsorted(edges, ratio, side="right")), len(edges) - 1)
            add(labels[index], position)
        groups = {label: groups[label] for label in labels if label in groups}
    elif by == "region_kind":
        for kind in ("thing", "stuff", "background"):
            for position in edited:
                kinds = items.at[position, "region_kinds"]
                if (membership == "all" and set(kinds) == {kind}) or (membership != "all" and _members(kinds, {kind}, membership)):
                    add(kind, position)
    elif by == LOCAL_BREAKDOWN:
        local = set(items.index[(items["kind"] == "edited") & items["region_kinds"].map(lambda k: "whole" not in k)])
        return {name: [p for p in positions if p in local] for name, positions in
                breakdown_groups(items, "generator", membership=membership, include_authentic=False,
                                 column=column).items() if set(positions) & local}
    else:
        raise ValueError(f"unknown breakdown {by!r}; known: {[*BREAKDOWNS, LOCAL_BREAKDOWN]}")
    if by == "generator" and include_authentic == "partition":
        return partition_authentic(items, groups)
    return {name: _with_authentic(items, positions, include_authentic is True) for name, positions in groups.items()}


def partition_authentic(items: pd.DataFrame, groups: dict[str, list[int]]) -> dict[str, list[int]]:
    """Each group's edited positions plus its share of the authentic images: the authentic items,
    in item-id order, dealt to the groups in turn (sorted by name), so the shares differ by at most
    one (OpenSDI Table 2: every test generator has its own real images)."""
    authentic = items.index[items["kind"] == "authentic"]
    order = sorted(authentic, key=lambda p: items.at[p, "item_id"])
    names = sorted(groups)
    shares: dict[str, list[int]] = {name: [] for name in names}
    for k, position in enumerate(order):
        if names:
            shares[names[k % len(names)]].append(int(position))
    return {name: sorted(set(groups[name]) | set(shares[name])) for name in groups}


def held_out_groups(items: pd.DataFrame, held_out: list[str], *, membership: str = "last",
                    include_authentic: bool = True) -> dict[str, Any]:
    """The cross-generator protocol's image sets (DiffSeg30k Table 5, OpenSDI Tables 3-4), by
    class label (the ``classes`` column when ``items`` has it, else the configured names):
    ``held_out`` names classes.

    Returns {"held_out_set": positions of edited images that belong to the held-out generators
    by ``membership`` (last turn's generator by default), "seen_set": edited images none of whose
    turns used a held-out generator, "per_generator": {name: positions} for each held-out
    generator, "missing": held-out names that no evaluation image uses}; authentic images added
    to each set when ``include_authentic``.
    """
    wanted = set(held_out)
    edited = items.index[items["kind"] == "edited"]
    gens = items["classes"] if "classes" in items else items["generators"]
    held = [p for p in edited if _members(gens[p], wanted, membership)]
    seen = [p for p in edited if gens[p] and not any(g in wanted for g in gens[p])]
    per_generator = {name: [p for p in edited if _members(gens[p], {name}, membership)] for name in held_out}
    used = {g for p in edited for g in gens[p]}
    return {
        "held_out_set": _with_authentic(items, held, include_authentic),
        "seen_set": _with_authentic(items, seen, include_authentic),
        "per_generator": {k: _with_authentic(items, v, include_authentic) for k, v in per_generator.items() if v},
        "missing": sorted(wanted - used),
    }


def label_of_generator(provenance: pd.DataFrame) -> dict[str, int]:
    """Configured generator name -> the label value it writes in label maps (from provenance)."""
    if provenance.empty or "label" not in provenance:
        return {}
    pairs = provenance[["generator", "label"]].drop_duplicates()
    return {str(g): int(label) for g, label in zip(pairs["generator"], pairs["label"])}


def mean_over_groups(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The unweighted mean over groups of every number in their summaries' ``pixel_per_image`` and
    ``image`` sections (a paper's "AVG" column, e.g. OpenSDI Tables 3-4); ``groups`` names them.
    A number missing or None in a group is left out of that key's mean."""
    def mean(values: list[Any]) -> Any:
        if values and all(isinstance(v, dict) for v in values):
            keys = list(dict.fromkeys(k for v in values for k in v))
            return {k: mean([v[k] for v in values if k in v]) for k in keys}
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return float(np.mean(numbers)) if numbers else None

    out: dict[str, Any] = {"groups": list(summaries)}
    for section in ("pixel_per_image", "image"):
        values = [s[section] for s in summaries.values() if isinstance(s.get(section), dict)]
        out[section] = mean(values) if values else None
    return out
