"""Which evaluation images belong to which group: the bookkeeping behind the seeds' breakdowns
(per generator, per turn count, per mask-area bucket, per region kind), the cross-generator
protocol and the LoRA-as-parent protocol. Pure pandas: rows in, positions out.

A group is always "its edited images + every authentic image of the split" (``include_authentic``,
on by default): authentic images are the negatives that make image-level AP / AUC / R@50 (real)
defined for each group, and they are the same images in every group, so groups differ only in
which edits they contain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PROTOCOLS = ("in_domain", "breakdowns", "robustness", "cross_generator", "lora_as_parent", "brgen")
BREAKDOWNS = ("generator", "turns", "area_bucket", "region_kind")
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


def item_table(rows: pd.DataFrame, samples: pd.DataFrame, provenance: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation item (same order as ``rows``, the split table's rows) with what the
    breakdowns need: kind, generators (list, in turn order), last_generator, n_turns,
    edited_area_ratio, region_kinds (list, in turn order). Authentic items have empty lists."""
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
                     include_authentic: bool = True) -> dict[str, list[int]]:
    """Positions (into ``items``) of each group of the breakdown ``by``.

    - ``generator``: by the configured generator name (provenance), last turn's generator
      (``membership: last``), every generator the sample went through (``any``), or only
      samples made by a single generator throughout (``all``).
    - ``turns``: by number of edit turns (1, 2, 3).
    - ``area_bucket``: by the edited area ratio of the sample, buckets ending at ``area_edges``
      (BR-Gen Table 7: 0.2, 0.4, 0.6, 0.8, 1.0).
    - ``region_kind``: thing / stuff / background of the last turn's region (``last``), of any
      turn (``any``), or of every turn (``all``).

    Groups with no edited image are left out. Raises ValueError for an unknown ``by``.
    """
    edited = items.index[items["kind"] == "edited"]
    groups: dict[str, list[int]] = {}

    def add(name: str, position: int) -> None:
        groups.setdefault(name, []).append(position)

    if by == "generator":
        names = sorted({g for gens in items.loc[edited, "generators"] for g in gens})
        for name in names:
            for position in edited:
                gens = items.at[position, "generators"]
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
    else:
        raise ValueError(f"unknown breakdown {by!r}; known: {list(BREAKDOWNS)}")
    return {name: _with_authentic(items, positions, include_authentic) for name, positions in groups.items()}


def held_out_groups(items: pd.DataFrame, held_out: list[str], *, membership: str = "last",
                    include_authentic: bool = True) -> dict[str, Any]:
    """The cross-generator protocol's image sets (DiffSeg30k Table 5, OpenSDI Tables 3-4).

    Returns {"held_out_set": positions of edited images that belong to the held-out generators
    by ``membership`` (last turn's generator by default), "seen_set": edited images none of whose
    turns used a held-out generator, "per_generator": {name: positions} for each held-out
    generator, "missing": held-out names that no evaluation image uses}; authentic images added
    to each set when ``include_authentic``.
    """
    wanted = set(held_out)
    edited = items.index[items["kind"] == "edited"]
    gens = items["generators"]
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
