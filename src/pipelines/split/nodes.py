"""Split: assign kept samples to splits by source group, so no base image (nor any other crop or
view of the same photo) appears in two splits, and add unedited base images as authentic
negatives. Several named protocols are made from one seed, each saved as its own table:

- ``random``: ratios over groups; DiffSeg30k 8:2 train/val, BR-Gen 8:1:1 train/val/test.
- ``leave_out``: DiffSeg30k's cross-generator protocol: train on samples none of whose turns used
  a held-out generator, test on samples that used one (pairs Flux+Hunyuan, SD2+SD3.5,
  GLIDE+Kolors by default); train and test groups still come from the seeded group cut.
- ``train_on_one``: OpenSDI's protocol: train on samples edited only by one generator, test on
  every sample of the test groups; with ``counts`` (and ``scale``), Table 2's sizes: N edited
  train items of that class, M per class in test, as many authentic items as edited per split.

Protocols match on class LABELS (``contract.labels``: an entry's ``label``), never on configured
names: every sample an entry made (local edit, full synthesis, a classic edit configured with a
class's label) is where its class says.
- ``published``: the split a published dataset shipped with (imports set ``published_split``).
- ``transfer``: BR-Gen's cross-type protocol (Table 4): train on the edits of one type (a
  generator family or a region kind), evaluate on the other's, over the in-domain group cut.

A protocol that names a generator absent from the generator list is skipped and recorded as such
in ``split_protocols``; ``split.use`` picks the protocol that becomes ``splits`` (read by train
and evaluate).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.contract.ids import REAL_ONLY_KIND, pool_of
from pipelines.contract.labels import class_of, generator_names
from pipelines.contract.params import SplitParams, SplitProtocol, params_of
from pipelines.contract.schemas import PROTOCOL_COLUMNS, SPLIT_COLUMNS

logger = logging.getLogger(__name__)

CROSS_GENERATOR_NAMES = ["train", "test"]  # leave_out / train_on_one: (train, test), 8:2 by default
CROSS_GENERATOR_RATIOS = [0.8, 0.2]


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


def _generator_set(row: Any) -> set[str]:
    value = getattr(row, "generators", None)
    if value:
        return set(value)
    last = getattr(row, "last_generator", "")
    return {last} if isinstance(last, str) and last else set()


def _configured_generators(params: SplitParams, samples: pd.DataFrame) -> list[str]:
    """The classes protocols may name: the label space (``contract.labels``: an entry's ``label``,
    so a LoRA variant is its parent), else the generators the samples record."""
    if params.generators:
        return generator_names(params.generators)
    seen: list[str] = []
    for row in samples.itertuples():
        seen += [g for g in sorted(_generator_set(row)) if g not in seen]
    return seen


def expand_protocols(params: SplitParams | dict[str, Any], generators: list[str]) -> list[dict[str, Any]]:
    """The configured protocols, one entry per table to make: {name, kind, names, ratios,
    held_out, train_on, status}. ``status`` is 'ok' or 'skipped: <why>'."""
    params = params_of(SplitParams, params)
    configured = {k: v for k, v in params.protocols.items() if v is not None} or {"random": SplitProtocol()}
    by_lower = {g.lower(): g for g in generators}
    out: list[dict[str, Any]] = []

    def resolve(names: list[str]) -> tuple[list[str], list[str]]:
        found = [by_lower[n.lower()] for n in names if n.lower() in by_lower]
        missing = [n for n in names if n.lower() not in by_lower]
        return found, missing

    for key, entry in configured.items():
        if entry is None:  # removed by a layered env (e.g. conf/brgen drops leave-out / train-on)
            continue
        kind = entry.kind
        if kind in ("random", "published"):
            names = list(params.names if entry.names is None else entry.names)
            ratios = list(params.ratios if entry.ratios is None else entry.ratios)
            check_ratios(names, ratios)
            out.append({"name": key, "kind": kind, "names": names, "ratios": ratios, "held_out": [], "train_on": "",
                        "status": "ok"})
            continue
        if kind == "transfer":
            out.append(transfer_protocol(key, entry, params, generators))
            continue
        names = list(CROSS_GENERATOR_NAMES if entry.names is None else entry.names)
        ratios = list(CROSS_GENERATOR_RATIOS if entry.ratios is None else entry.ratios)
        check_ratios(names, ratios)
        if len(names) != 2:
            raise ValueError(f"split.protocols.{key}: {kind} needs two split names (train, test), got {names}")
        if kind == "leave_out":
            sets = entry.pairs or [entry.held_out or []]
            for held in sets:
                found, missing = resolve(list(held))
                name = f"{key}-{'+'.join(held)}" if entry.pairs is not None else key
                status = "ok" if found and not missing else \
                    f"skipped: generator(s) {', '.join(missing) or '(none given)'} not in the generator list"
                out.append({"name": name, "key": key, "kind": kind, "names": names, "ratios": ratios,
                            "held_out": found or list(held), "train_on": "", "status": status})
        else:  # train_on_one
            train_on = entry.train_on
            targets = generators if train_on == "each" else ([train_on] if isinstance(train_on, str) else list(train_on))
            for target in targets:
                found, missing = resolve([target])
                status = "ok" if found else f"skipped: generator {target} not in the generator list"
                out.append({"name": f"{key}-{target}", "key": key, "kind": kind, "names": names, "ratios": ratios, "held_out": [],
                            "train_on": found[0] if found else target, "status": status,
                            "counts": entry.counts, "scale": entry.scale})
    for entry in out:  # split.pools names configured keys; a leave-out pair's table keeps its key
        entry.setdefault("key", entry["name"])
    names = [p["name"] for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"split protocol names must be unique, got {names}")
    return out


def transfer_protocol(key: str, entry: SplitProtocol, params: SplitParams, generators: list[str]) -> dict[str, Any]:
    """A ``transfer`` protocol (BR-Gen Table 4: GAN -> diffusion, background -> stuff, ...): the
    section's names / ratios unless the entry sets its own, so with the same seed its group cut
    is the in-domain protocol's (the test images are the in-domain test images of the target
    type). ``held_out`` lists the generators of the target family (none for a region-kind transfer).

    Raises:
        ValueError: ``by``, ``source`` or ``target`` missing, or ``families`` missing for a
            generator-family transfer.
    """
    names = list(params.names if entry.names is None else entry.names)
    ratios = list(params.ratios if entry.ratios is None else entry.ratios)
    check_ratios(names, ratios)
    if not (entry.by and entry.source and entry.target):
        raise ValueError(f"split.protocols.{key}: a transfer protocol needs by, source and target")
    if entry.by == "generator_family" and not entry.families:
        raise ValueError(f"split.protocols.{key}: a generator_family transfer needs families (generator -> family)")
    families = {g.lower(): f for g, f in (entry.families or {}).items()}
    held = [g for g in generators if families.get(g.lower()) == entry.target] if entry.by == "generator_family" else []
    return {"name": key, "kind": "transfer", "names": names, "ratios": ratios, "held_out": held,
            "train_on": f"{entry.by}={entry.source}", "status": "ok",
            "transfer": {"by": entry.by, "source": entry.source, "target": entry.target, "families": families}}


def sample_types(sample: Any, by: str, families: dict[str, str]) -> set[str]:
    """The types of a kept sample for a transfer: its generators' families or its region kinds."""
    if by == "generator_family":
        return {families.get(g.lower(), "") for g in _generator_set(sample)}
    return {str(k) for k in (getattr(sample, "region_kinds", None) or [])}


def _edited_row(s: Any, split: str, protocol: str) -> dict[str, Any]:
    return {"item_id": s.sample_id, "split": split, "kind": "edited", "image_dataset": "edited_images",
            "image_key": s.sample_id, "label_key": s.sample_id, "base_id": s.base_id, "group_id": s.group_id,
            "last_generator": s.last_generator, "generators": sorted(_generator_set(s)), "protocol": protocol}


def _authentic_row(b: Any, split: str, protocol: str) -> dict[str, Any]:
    return {"item_id": f"{b.base_id}-authentic", "split": split, "kind": "authentic", "image_dataset": "base_images",
            "image_key": b.base_id, "label_key": "", "base_id": b.base_id, "group_id": b.group_id,
            "last_generator": "", "generators": [], "protocol": protocol}


def _published(value: Any) -> str:
    return value if isinstance(value, str) else ""


def build_protocol(protocol: dict[str, Any], kept: pd.DataFrame, authentic: pd.DataFrame, groups: list[str],
                   params: SplitParams) -> pd.DataFrame:
    """One protocol's split table (columns ``SPLIT_COLUMNS``). ``authentic``: the real bases,
    real-only pool photos included (``pool_rows`` places those)."""
    seed = params.seed
    name, kind, names = protocol["name"], protocol["kind"], protocol["names"]
    rows: list[dict[str, Any]] = []
    pools = authentic[authentic["kind"] == REAL_ONLY_KIND]
    authentic = authentic[authentic["kind"] != REAL_ONLY_KIND]
    if kind == "published":
        if "published_split" not in kept and "published_split" not in authentic:
            raise ValueError("the published protocol needs a `published_split` column (set by published-format imports)")
        rows += [_edited_row(s, _published(getattr(s, "published_split", "")), name) for s in kept.itertuples()
                 if _published(getattr(s, "published_split", ""))]
        if params.add_authentic:
            rows += [_authentic_row(b, _published(getattr(b, "published_split", "")), name) for b in authentic.itertuples()
                     if _published(getattr(b, "published_split", ""))]
        return pd.DataFrame(rows, columns=SPLIT_COLUMNS)
    assignment = assign_groups(groups, names, protocol["ratios"], seed)
    train, test = names[0], names[-1]
    held_out = set(protocol["held_out"])
    classes = class_of(params.generators) if params.generators else {}
    for s in kept.itertuples():
        split, gens = assignment[s.group_id], {classes.get(g, g) for g in _generator_set(s)}
        if kind == "random":
            rows.append(_edited_row(s, split, name))
        elif kind == "leave_out":
            if split == train and not gens & held_out:
                rows.append(_edited_row(s, train, name))
            elif split == test and gens & held_out:
                rows.append(_edited_row(s, test, name))
        elif kind == "train_on_one":
            if split == test or gens == {protocol["train_on"]}:
                rows.append(_edited_row(s, split, name))
        elif kind == "transfer":  # a sample of one type only: train on source, evaluate on target
            rule = protocol["transfer"]
            wanted = rule["source"] if split == train else rule["target"]
            if sample_types(s, rule["by"], rule["families"]) == {wanted}:
                rows.append(_edited_row(s, split, name))
    if protocol.get("counts"):  # OpenSDI Table 2: capped per class, real : fake balanced per split
        rows = capped_rows(rows, protocol["counts"], protocol["scale"], train, seed, classes)
        if params.add_authentic:
            rows += balanced_authentic(rows, authentic, assignment, name, seed)
        return pd.DataFrame(rows + pool_rows(protocol, pools, params), columns=SPLIT_COLUMNS)
    if params.add_authentic:
        in_train = [b for b in authentic.itertuples() if assignment[b.group_id] == train]
        limit = params.n_authentic_train
        if limit is not None and limit < len(in_train):
            chosen = np.random.default_rng([seed, 1]).choice(len(in_train), size=limit, replace=False)
            in_train = [in_train[i] for i in sorted(chosen)]
        rows += [_authentic_row(b, train, name) for b in in_train]
        rows += [_authentic_row(b, assignment[b.group_id], name) for b in authentic.itertuples()
                 if assignment[b.group_id] != train]
    return pd.DataFrame(rows + pool_rows(protocol, pools, params), columns=SPLIT_COLUMNS)


def pool_rows(protocol: dict[str, Any], pools: pd.DataFrame, params: SplitParams) -> list[dict[str, Any]]:
    """Authentic rows of the real-only pool photos (``ingest.real_pools``) that ``split.pools``
    gives this protocol: each pool whose ``protocols`` name the protocol's configured key (None:
    every protocol) puts at most ``n`` of its photos (a seeded draw; all when None) in ``split``
    (None: the protocol's first split). DiffSeg30k sec. 4: 5k unedited real images in training;
    30k real negatives for the image classifiers.

    Raises:
        ValueError: a pool's split is not one of the protocol's split names.
    """
    rows: list[dict[str, Any]] = []
    for index, (pool, spec) in enumerate(params.pools.items()):
        if spec.protocols is not None and protocol.get("key", protocol["name"]) not in spec.protocols:
            continue
        split = spec.split or protocol["names"][0]
        if split not in protocol["names"]:
            raise ValueError(f"split.pools.{pool}.split={split!r} is not a split of protocol {protocol['name']} "
                             f"({protocol['names']})")
        members = [b for b in pools.itertuples() if pool_of(b.base_id) == pool]
        limit = len(members) if spec.n is None else spec.n
        if limit > len(members):
            logger.warning("split: pool %s has %d real-only photos, fewer than the %d asked for", pool, len(members), limit)
        rows += [_authentic_row(b, split, protocol["name"]) for b in _seeded_pick(members, limit, [params.seed, 4, index])]
    return rows


def _seeded_pick(items: list[Any], limit: int, seed: list[int]) -> list[Any]:
    """At most ``limit`` of ``items`` (in their order), drawn with ``seed``."""
    if limit >= len(items):
        return items
    chosen = np.random.default_rng(seed).choice(len(items), size=limit, replace=False)
    return [items[i] for i in sorted(chosen)]


def capped_rows(rows: list[dict[str, Any]], counts: dict[str, int], scale: float, train: str, seed: int,
                classes: dict[str, str]) -> list[dict[str, Any]]:
    """OpenSDI Table 2's sizes: at most ``round(counts['train'] * scale)`` edited rows in the train
    split and ``round(counts['test'] * scale)`` per class (the last turn's label) in every other
    split, drawn with ``seed``; a missing key keeps every row of those splits. Rows keep their order."""
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = "" if row["split"] == train else classes.get(row["last_generator"], row["last_generator"])
        by_key.setdefault((row["split"], key), []).append(row)
    kept: set[str] = set()
    for index, ((split, key), group) in enumerate(sorted(by_key.items())):
        limit = counts.get("train" if split == train else "test")
        limit = len(group) if limit is None else int(round(limit * scale))
        if limit > len(group):
            logger.warning("split: %s%s has %d edited items, fewer than the %d asked for", split,
                           f" ({key})" if key else "", len(group), limit)
        kept |= {r["item_id"] for r in _seeded_pick(group, limit, [seed, 2, index])}
    return [r for r in rows if r["item_id"] in kept]


def balanced_authentic(rows: list[dict[str, Any]], authentic: pd.DataFrame, assignment: dict[str, str], protocol: str,
                       seed: int) -> list[dict[str, Any]]:
    """As many authentic rows in each split as it has edited rows (OpenSDI: real : fake 1 : 1),
    drawn with ``seed`` from the real bases of that split's groups (all of them when too few)."""
    out: list[dict[str, Any]] = []
    wanted = pd.Series([r["split"] for r in rows], dtype=object).value_counts().to_dict()
    for index, split in enumerate(sorted(wanted)):
        pool = [b for b in authentic.itertuples() if assignment[b.group_id] == split]
        if len(pool) < wanted[split]:
            logger.warning("split: %s has %d real bases for %d edited items", split, len(pool), wanted[split])
        out += [_authentic_row(b, split, protocol) for b in _seeded_pick(pool, wanted[split], [seed, 3, index])]
    return out


def edited_groups(base_manifest: pd.DataFrame, kept: pd.DataFrame, params: SplitParams) -> list[str]:
    """The photo groups the seeded cut assigns: those of the edited bases (real or AI) and kept
    samples. Real-only pool photos are not cut (``pool_rows`` places them), so adding pools never
    moves a base to another split.

    Raises:
        ValueError: a pool photo shares its group (its source photo) with an edited base, or is in
            a pool ``split.pools`` does not configure: the pools must be disjoint from the bases.
    """
    is_pool = base_manifest["kind"] == REAL_ONLY_KIND
    groups = set(base_manifest.loc[~is_pool, "group_id"]) | set(kept["group_id"])
    shared = sorted(groups & set(base_manifest.loc[is_pool, "group_id"]))
    if shared:
        raise ValueError(f"real-only pool photos share their photo with an edited base (groups {shared[:5]}): "
                         "ingest.real_pools must draw photos disjoint from the bases")
    unknown = sorted({pool_of(b) for b in base_manifest.loc[is_pool, "base_id"]} - set(params.pools))
    if unknown:
        raise ValueError(f"base_manifest has real-only photos of pool(s) {unknown} that split.pools does not place "
                         f"(configured: {sorted(params.pools)})")
    return sorted(groups)


def make_splits(
    filtered_samples: pd.DataFrame, base_manifest: pd.DataFrame, params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """Every configured protocol as a named table, reproducible from ``params['seed']``.

    Returns (splits: the table of protocol ``params['use']`` (default ``random``), {protocol: table},
    split_protocols: one row per protocol with its kind, status, target ratios, held-out generators
    and counts). Raises ValueError when ``use`` names a skipped or unknown protocol.
    """
    params = params_of(SplitParams, params)
    kept = filtered_samples[filtered_samples["kept"]]
    authentic = base_manifest[base_manifest["kind"].isin(["real", REAL_ONLY_KIND])]
    groups = edited_groups(base_manifest, kept, params)
    protocols = expand_protocols(params, _configured_generators(params, filtered_samples))
    tables: dict[str, pd.DataFrame] = {}
    summary = []
    published = {_published(v) for frame in (kept, authentic) for v in frame.get("published_split", [])} - {""}
    for protocol in protocols:
        if protocol["kind"] == "published" and protocol["status"] == "ok" and not published:
            protocol["status"] = "skipped: no published split in the data (set by published-format imports)"
        if protocol["status"] == "ok":
            table = build_protocol(protocol, kept, authentic, groups, params)
            leaks = table.groupby("group_id")["split"].nunique()
            if protocol["kind"] != "published" and (leaks > 1).any():  # a guard against future edits
                raise AssertionError(f"{protocol['name']}: groups in several splits: {list(leaks[leaks > 1].index)}")
            tables[protocol["name"]] = table
        else:
            logger.warning("split protocol %s %s", protocol["name"], protocol["status"])
            table = pd.DataFrame(columns=SPLIT_COLUMNS)
        summary.append({
            "protocol": protocol["name"], "kind": protocol["kind"], "status": protocol["status"],
            "split_names": list(protocol["names"]),
            "ratios": [float(r) for r in protocol["ratios"]] if protocol["kind"] != "published" else [],
            "held_out": list(protocol["held_out"]), "train_on": protocol["train_on"],
            "seed": params.seed, "n_items": len(table),
            "n_edited": int((table["kind"] == "edited").sum()), "n_authentic": int((table["kind"] == "authentic").sum()),
            "n_groups": int(table["group_id"].nunique()),
        })
    use = params.use
    if use not in tables:
        known = {p["name"]: p["status"] for p in protocols}
        raise ValueError(f"split.use={use!r} is not a usable protocol; protocols: {known}")
    splits = tables[use]
    counts = splits.groupby(["split", "kind"]).size().unstack(fill_value=0)
    logger.info("split protocols made: %s; `splits` = %s:\n%s", sorted(tables), use, counts.to_string())
    return splits, tables, pd.DataFrame(summary, columns=PROTOCOL_COLUMNS)


def split_samples(filtered_samples: pd.DataFrame, base_manifest: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """One row per item of protocol ``params['use']`` (default: the ``names`` / ``ratios`` random cut):
    every kept edited sample, plus (``add_authentic``) every real base image as an authentic
    negative with an all-zero label map, in the split of its group.

    Seeds: 8:2 train/val (DiffSeg30k), 8:1:1 train/val/test (BR-Gen), always by real image.
    """
    return make_splits(filtered_samples, base_manifest, params)[0]
