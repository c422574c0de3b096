"""Protocols match on class LABELS, never on configured names (issue 16): every sample an entry
made (local edit, full synthesis, a classic edit configured under a class's label) is where its
class says, in split (train-on-one, leave-out, random, Table 2's counts), in train (held-out
classes) and in evaluate (per-generator groups, held-out sets, OpenSDI's real partition)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.contract.params import EvaluateParams, params_of
from pipelines.evaluate import nodes as evaluate_nodes
from pipelines.evaluate.protocols import (
    breakdown_groups,
    held_out_groups,
    item_table,
    mean_over_groups,
)
from pipelines.split.nodes import make_splits
from pipelines.train.nodes import excluded_names, held_out_of_protocol

# Names differ from labels on purpose; three entries make class sd1.5 (inpaint, full synthesis,
# a copy-move configured under sd1.5), two make sdxl and two flux.
ENTRIES = [
    {"name": "SD15-inpaint", "generator": "sd-inpaint", "label": "sd1.5"},
    {"name": "sd15-t2i", "generator": "sd-txt2img", "label": "sd1.5", "task": "text-to-image"},
    {"name": "sd15-copy", "generator": "copy_move", "label": "sd1.5"},
    {"name": "xl-base", "generator": "sdxl-inpaint", "label": "sdxl"},
    {"name": "xl-t2i", "generator": "sdxl-txt2img", "label": "sdxl", "task": "text-to-image"},
    {"name": "flux-dev", "generator": "flux-inpaint", "label": "flux"},
    {"name": "flux-t2i", "generator": "flux-txt2img", "label": "flux", "task": "text-to-image"},
]
NAMES = [e["name"] for e in ENTRIES]
CLASS = {e["name"]: e["label"] for e in ENTRIES}
FULL = {"sd15-t2i", "xl-t2i", "flux-t2i"}


@pytest.fixture(scope="module")
def data():
    """30 photo groups of 2 real bases; each base has one sample per entry (full synthesis too)."""
    manifest, samples = [], []
    for g in range(30):
        for b in range(2):
            base_id = f"p{g}-c{b}"
            manifest.append({"base_id": base_id, "group_id": f"p{g}", "kind": "real"})
            for name in NAMES:
                samples.append({"sample_id": f"{base_id}-{name}", "base_id": base_id, "group_id": f"p{g}",
                                "generators": [name], "last_generator": name, "kept": True})
    return pd.DataFrame(samples), pd.DataFrame(manifest)


def split_params(**protocols):
    return {"seed": 0, "names": ["train", "test"], "ratios": [0.8, 0.2], "generators": ENTRIES, "add_authentic": True,
            "use": "random", "protocols": {"random": {}, **protocols}}


def edited(table: pd.DataFrame, split: str) -> set[str]:
    rows = table[(table["split"] == split) & (table["kind"] == "edited")]
    return {g for gens in rows["generators"] for g in gens}


def test_train_on_one_trains_on_every_entry_of_the_class_and_tests_on_all(data):
    samples, manifest = data
    _, tables, summary = make_splits(samples, manifest, split_params(
        **{"train-on": {"kind": "train_on_one", "train_on": "sd1.5"}}))
    table = tables["train-on-sd1.5"]
    # the class's inpaint, full-synthesis and copy-move entries all train; nothing of another class
    assert edited(table, "train") == {"SD15-inpaint", "sd15-t2i", "sd15-copy"}
    assert edited(table, "test") == set(NAMES)
    train_groups = set(table.loc[table["split"] == "train", "group_id"])
    expected = samples[samples["group_id"].isin(train_groups) & samples["last_generator"].map(CLASS).eq("sd1.5")]
    assert set(table.loc[(table["split"] == "train") & (table["kind"] == "edited"), "item_id"]) == set(expected["sample_id"])
    assert summary.set_index("protocol").at["train-on-sd1.5", "train_on"] == "sd1.5"
    # a configured NAME is not a class: the protocol is skipped, not silently matched by name
    _, tables, summary = make_splits(samples, manifest, split_params(
        **{"by-name": {"kind": "train_on_one", "train_on": "SD15-inpaint"}}))
    assert "by-name-SD15-inpaint" not in tables
    assert summary.set_index("protocol").at["by-name-SD15-inpaint", "status"].startswith("skipped")
    # "each" makes one protocol per class, not per entry
    _, tables, _ = make_splits(samples, manifest, split_params(**{"t": {"kind": "train_on_one", "train_on": "each"}}))
    assert set(tables) == {"random", "t-sd1.5", "t-sdxl", "t-flux"}


def test_leave_out_holds_out_every_entry_of_the_held_out_class(data):
    samples, manifest = data
    _, tables, _ = make_splits(samples, manifest, split_params(**{"lo": {"kind": "leave_out", "held_out": ["flux"]}}))
    table = tables["lo"]
    assert edited(table, "train") == {"SD15-inpaint", "sd15-t2i", "sd15-copy", "xl-base", "xl-t2i"}
    assert edited(table, "test") == {"flux-dev", "flux-t2i"}  # flux's full synthesis leaks nowhere


def test_table2_counts_cap_per_class_and_balance_real_and_fake(data):
    samples, manifest = data
    protocol = {"kind": "train_on_one", "train_on": "sd1.5", "ratios": [0.5, 0.5],
                "counts": {"train": 100, "test": 20}, "scale": 0.5}  # 50 fake train, 10 fake per class in test
    _, tables, _ = make_splits(samples, manifest, split_params(**{"train-on": protocol}))
    table = tables["train-on-sd1.5"]
    fake = table[table["kind"] == "edited"]
    per_class = fake.assign(cls=fake["last_generator"].map(CLASS)).groupby(["split", "cls"]).size()
    assert per_class[("train", "sd1.5")] == 50 and set(per_class["train"].index) == {"sd1.5"}
    assert dict(per_class["test"]) == {"flux": 10, "sd1.5": 10, "sdxl": 10}
    authentic = table[table["kind"] == "authentic"].groupby("split").size()
    # 30 real bases per split side: train asks 50 (all 30 given, logged), test 30 of 30
    assert authentic["train"] == 30 and authentic["test"] == 30
    again = make_splits(samples, manifest, split_params(**{"train-on": protocol}))[1]["train-on-sd1.5"]
    assert again.equals(table)  # reproducible from the seed


def test_train_records_held_out_classes_not_names(data):
    samples, manifest = data
    _, _, summary = make_splits(samples, manifest, split_params(**{"train-on": {"kind": "train_on_one",
                                                                                  "train_on": "sd1.5"}}))
    assert held_out_of_protocol(summary, "train-on-sd1.5", ENTRIES) == ["sdxl", "flux"]
    assert excluded_names("flux", ENTRIES) == ["flux-dev", "flux-t2i"]  # a label excludes each of its entries


def evaluation_items():
    names = ["SD15-inpaint", "sd15-t2i", "sd15-copy", "xl-base", "xl-t2i", "flux-dev"]
    provenance = pd.DataFrame([{"sample_id": f"s-{n}", "turn": 1, "generator": n, "label": 1,
                                "kind": "whole" if n in FULL else "thing"} for n in names])
    samples = pd.DataFrame([{"sample_id": f"s-{n}", "edited_area_ratio": 1.0 if n in FULL else 0.2} for n in names])
    rows = [{"item_id": f"s-{n}", "kind": "edited", "label_key": f"s-{n}", "last_generator": n} for n in names]
    rows += [{"item_id": f"a{k}-authentic", "kind": "authentic", "label_key": "", "last_generator": ""} for k in range(6)]
    return item_table(pd.DataFrame(rows), samples, provenance, CLASS)


def test_evaluate_groups_by_class_partitions_reals_and_keeps_local_edits_for_pixels():
    items = evaluation_items()
    ids = lambda positions: sorted(items.loc[positions, "item_id"])  # noqa: E731
    groups = breakdown_groups(items, "generator", include_authentic=False)
    assert ids(groups["sd1.5"]) == ["s-SD15-inpaint", "s-sd15-copy", "s-sd15-t2i"] and set(groups) == {"sd1.5", "sdxl", "flux"}
    by_name = breakdown_groups(items, "generator", include_authentic=False, column="generators")
    assert "sd15-t2i" in by_name and "sd1.5" not in by_name  # the LoRA protocol's view: configured names
    partitioned = breakdown_groups(items, "generator", include_authentic="partition")
    reals = [set(ids(p)) - {i for i in items["item_id"] if i.startswith("s-")} for p in partitioned.values()]
    assert [len(r) for r in reals] == [2, 2, 2] and set.union(*reals) == {f"a{k}-authentic" for k in range(6)}
    local = breakdown_groups(items, "generator_local")
    assert ids(local["sd1.5"]) == ["s-SD15-inpaint", "s-sd15-copy"] and ids(local["sdxl"]) == ["s-xl-base"]
    held = held_out_groups(items, ["sdxl", "flux"], include_authentic=False)
    assert ids(held["held_out_set"]) == ["s-flux-dev", "s-xl-base", "s-xl-t2i"]
    assert ids(held["seen_set"]) == ["s-SD15-inpaint", "s-sd15-copy", "s-sd15-t2i"] and held["missing"] == []


def test_cross_generator_maps_a_checkpoints_names_to_classes():
    items = evaluation_items()

    class Metrics:  # positions in, a summary naming them out: what _cross_generator does with them
        def summary(self, positions=None):
            return sorted(items.loc[positions, "item_id"]) if positions is not None else []

    params = params_of(EvaluateParams, {"generators": ENTRIES, "groups_include_authentic": False})
    out = evaluate_nodes._cross_generator(Metrics(), items, params, {"held_out_generators": ["xl-t2i"]})
    assert out["held_out"] == ["sdxl"] and out["held_out_set"] == ["s-xl-base", "s-xl-t2i"]


def test_mean_over_groups_is_the_papers_avg_column():
    groups = {"a": {"pixel_per_image": {"manipulated": {"f1": 0.2, "iou": 0.1}}, "image": {"accuracy": 1.0}},
              "b": {"pixel_per_image": {"manipulated": {"f1": 0.4, "iou": None}}, "image": {"accuracy": 0.5}}}
    mean = mean_over_groups(groups)
    assert mean["groups"] == ["a", "b"] and mean["image"]["accuracy"] == pytest.approx(0.75)
    assert mean["pixel_per_image"]["manipulated"]["f1"] == pytest.approx(0.3)
    assert mean["pixel_per_image"]["manipulated"]["iou"] == pytest.approx(0.1)
    assert np.isfinite(mean["image"]["accuracy"])


def test_generator_weights_make_classic_edits_rarer_and_equal_weights_change_nothing():
    from pipelines.contract.labels import generator_entries
    from pipelines.inpaint.nodes import plan_edits

    regions = pd.DataFrame([{"region_id": f"s{k}-r1", "sample_id": f"s{k}", "base_id": f"b{k}", "turn": 1,
                             "prompt": "p", "edit_type": "removal", "kind": "thing"} for k in range(2000)])
    names = ["sd1.5", "copy", "splice"]
    weighted = [{"name": "sd1.5"}, {"name": "copy", "weight": 0.1}, {"name": "splice", "weight": 0.1}]
    counts = pd.Series([p["generators"][0] for p in plan_edits(regions, {"generators": weighted, "seed": 0})]).value_counts()
    assert counts["sd1.5"] / len(regions) == pytest.approx(1 / 1.2, abs=0.03)
    assert counts["copy"] / len(regions) == pytest.approx(0.1 / 1.2, abs=0.02)
    # all weights equal (the default 1): the draws of the unweighted code, RNG call for RNG call
    same = plan_edits(regions.head(50), {"generators": [{"name": n, "weight": 2.0} for n in names], "seed": 0})
    assert [p["generators"] for p in same] == [p["generators"] for p in plan_edits(
        regions.head(50), {"generators": names, "seed": 0})]
    with pytest.raises(ValueError, match="weight"):
        generator_entries([{"name": "x", "weight": -1}])
