"""Data quality gates: each gate passes on sound data and stops the run on deliberately broken
data, with a message naming the gate, the expectation and offending rows, and a report page.
The suites are the real ones in conf/base/gates.yml."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro_datasets.partitions import PartitionedDataset

from pipelines.hooks import DataGateHooks
from pipelines.settings import CONFIG_LOADER_ARGS
from pipelines.validation import GATES, GateContext, GateFailure, run_gate
from tests.stages import contract_table

REPO = Path(__file__).resolve().parents[2]
SIZE = 64
GENERATORS = ["telea", "navier_stokes", "tiny-sd"]


def lazy(arrays):
    return {k: (lambda v=v: v) for k, v in arrays.items()}


@pytest.fixture(scope="module")
def conf():
    loader = OmegaConfigLoader(str(REPO / "conf"), **{k: v for k, v in CONFIG_LOADER_ARGS.items()})
    params = loader["parameters"]
    params["ingest"]["image_size"] = SIZE
    return loader["gates"]["gates"], params


@pytest.fixture
def hook(conf, tmp_path):
    """A DataGateHooks as a Kedro session sets it up, and a catalog holding only gate_reports."""
    gates, params = conf
    hooks = DataGateHooks()
    hooks.after_context_created(SimpleNamespace(config_loader={"gates": {"gates": gates}}, params=params))
    catalog = DataCatalog({"gate_reports": PartitionedDataset(path=str(tmp_path / "gates"), dataset="text.TextDataset",
                                                              filename_suffix=".md")})
    return hooks, catalog, tmp_path / "gates"


def run_hook(hook, node: str, outputs: dict, inputs: dict | None = None):
    hooks, catalog, _ = hook
    hooks.after_node_run(node=SimpleNamespace(name=node), catalog=catalog, inputs=inputs or {}, outputs=outputs)


def photo(name: str) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)()[..., :3], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------- ingest
def ingest_outputs():
    import hashlib

    images = {name: photo(name) for name in ("astronaut", "coffee", "rocket")}
    manifest = pd.DataFrame([{"base_id": k, "group_id": k, "source": "sample", "kind": "real", "height": SIZE, "width": SIZE,
                              "sha256": hashlib.sha256(v.tobytes()).hexdigest()} for k, v in images.items()])
    return images, contract_table("base_manifest", manifest)


def test_ingest_gate_passes_sound_bases_and_writes_its_report(hook):
    images, manifest = ingest_outputs()
    run_hook(hook, "ingest_photos", {"base_images": lazy(images), "base_manifest": manifest})
    report = (hook[2] / "ingest.md").read_text()
    assert "passed" in report and "expect_column_values_to_be_unique" in report


@pytest.mark.parametrize("breakage", ["duplicate_sha256", "unreadable", "grey_mode", "wrong_size"])
def test_ingest_gate_stops_on_broken_bases(hook, breakage):
    images, manifest = ingest_outputs()
    loaders = lazy(images)
    if breakage == "duplicate_sha256":
        images["copy"] = images["astronaut"]
        loaders = lazy(images)
        manifest = pd.concat([manifest, manifest.iloc[[0]].assign(base_id="copy", group_id="copy")], ignore_index=True)
        expected = ("expect_column_values_to_be_unique", "copy")
    elif breakage == "unreadable":
        def broken():
            raise OSError("truncated PNG")
        loaders["coffee"] = broken
        expected = ("readable", "coffee")
    elif breakage == "grey_mode":
        loaders["rocket"] = lambda: images["rocket"].mean(axis=2).astype(np.uint8)
        expected = ("channels", "rocket")
    else:
        loaders["coffee"] = lambda: cv2.resize(images["coffee"], (SIZE, SIZE + 8))
        expected = ("height", "coffee")
    with pytest.raises(GateFailure) as failure:
        run_hook(hook, "ingest_photos", {"base_images": loaders, "base_manifest": manifest})
    message = str(failure.value)
    assert "gate 'ingest'" in message and all(e in message for e in expected), message
    assert "**FAIL**" in (hook[2] / "ingest.md").read_text()


# ------------------------------------------------------------------------------------- perceive
def square(top, left, side):
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[top:top + side, left:left + side] = 255
    return mask


def perceive_outputs(masks: dict[str, np.ndarray], groups: dict[str, str] | None = None):
    rows = []
    for turn, region_id in enumerate(masks, start=1):
        rows.append({"region_id": region_id, "sample_id": "s", "base_id": "b", "turn": turn, "label": "x",
                     "kind": "thing", "area_ratio": float((masks[region_id] > 0).mean()),
                     "edit_group": (groups or {}).get(region_id, region_id), "edit_type": "attribute", "prompt": "p"})
    return {"region_masks": lazy(masks), "regions": contract_table("regions", pd.DataFrame(rows))}


def test_perceive_gate_treats_an_additions_two_turns_as_one_region(hook, conf):
    # t1 and t2 are an addition (removal then addition) on ONE region: identical masks, IoU 1.
    masks = {"s-t1": square(0, 0, 20), "s-t2": square(0, 0, 20), "s-t3": square(40, 40, 20)}
    outputs = perceive_outputs(masks, {"s-t1": "g1", "s-t2": "g1", "s-t3": "g2"})
    run_hook(hook, "perceive_regions", outputs)  # raises GateFailure if t1/t2 counted as overlapping regions
    gates, params = conf
    result = run_gate(GATES["perceive"], outputs, gates["perceive"], GateContext(params=params, generators=GENERATORS))
    assert result.passed
    assert result.rows["samples"] == 1 and result.rows["region_pairs"] == 1  # one pair: g1 vs g2, not three
    iou = [o for o in result.outcomes if o.kwargs.get("column") == "iou"]
    assert iou and iou[0].element_count == 1
    # the same masks as three distinct regions: t1 / t2 overlap completely and the gate stops
    with pytest.raises(GateFailure, match="iou"):
        run_hook(hook, "perceive_regions", perceive_outputs(masks))


def test_gates_check_the_contract_columns(hook):
    images, manifest = ingest_outputs()
    with pytest.raises(GateFailure, match="expect_table_columns_to_match_set"):
        run_hook(hook, "ingest_photos", {"base_images": lazy(images), "base_manifest": manifest.drop(columns="caption")})


@pytest.mark.parametrize("breakage", ["overlap", "four_regions", "area"])
def test_perceive_gate_stops_on_broken_regions(hook, breakage):
    if breakage == "overlap":  # IoU 0.81 between two distinct regions
        masks, expected = {"s-t1": square(0, 0, 20), "s-t2": square(0, 1, 20)}, ("iou", "s-t2")
    elif breakage == "four_regions":
        masks = {f"s-t{i}": square(0, 15 * i, 10) for i in range(4)}
        expected = ("n_regions", "'s'")
    else:
        masks, expected = {"s-t1": square(0, 0, 63)}, ("mask_area_ratio", "s-t1")
    with pytest.raises(GateFailure) as failure:
        run_hook(hook, "perceive_regions", perceive_outputs(masks))
    assert "gate 'perceive'" in str(failure.value) and all(e in str(failure.value) for e in expected), str(failure.value)


# ------------------------------------------------------------------------------------- inpaint
def inpaint_outputs():
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[10:30, 10:30] = 1
    label[20:40, 20:40] = 3
    samples = pd.DataFrame([{"sample_id": "s", "n_turns": 2}])
    provenance = pd.DataFrame([{"sample_id": "s", "turn": 1, "generator": "telea", "prompt": "a"},
                               {"sample_id": "s", "turn": 2, "generator": "tiny-sd", "prompt": "b"}])
    return {"edited_images": lazy({"s": photo("chelsea")}), "label_maps": lazy({"s": label}),
            "samples": contract_table("samples", samples), "provenance": contract_table("provenance", provenance)}


@pytest.mark.parametrize("breakage", [None, "size", "label_value", "missing_turn"])
def test_inpaint_gate(hook, breakage):
    outputs = inpaint_outputs()
    if breakage is None:
        run_hook(hook, "inpaint_samples", outputs)
        return
    if breakage == "size":
        outputs["label_maps"] = lazy({"s": np.zeros((SIZE, SIZE + 2), np.uint8)})
        expected = "label_width"
    elif breakage == "label_value":
        label = outputs["label_maps"]["s"]().copy()
        label[0, 0] = 7  # only 3 generators are configured
        outputs["label_maps"] = lazy({"s": label})
        expected = "'label': 7"
    else:
        outputs["provenance"] = outputs["provenance"].iloc[:1]
        expected = "provenance_turns"
    with pytest.raises(GateFailure) as failure:
        run_hook(hook, "inpaint_samples", outputs)
    assert "gate 'inpaint'" in str(failure.value) and expected in str(failure.value), str(failure.value)


# ------------------------------------------------------------------------------------- filter
def filter_outputs(scores=(10.0, 70.0), rate=0.5):
    table = pd.DataFrame({"sample_id": ["a", "b"], "quality_brisque": list(scores), "kept": [True, False],
                          "drop_reason": ["", "brisque 70.0 > 60"]})
    report = {"n_samples": 2, "n_kept": 1, "n_dropped": 1, "removal_rate": rate, "per_generator": {}, "per_edit_type": {},
              "per_reason": {"brisque > 60": 1},
              "checks": [{"name": "brisque", "scorer": "brisque", "valid_range": [-20.0, 150.0]}]}
    return {"filtered_samples": contract_table("filtered_samples", table), "filter_report": report}


def test_filter_gate_stops_on_a_score_out_of_range_and_on_a_missing_rate(hook):
    run_hook(hook, "filter_samples", filter_outputs())
    with pytest.raises(GateFailure, match="column_A='high'.*\n.*'score': 500.0"):
        run_hook(hook, "filter_samples", filter_outputs(scores=(500.0, 70.0)))
    with pytest.raises(GateFailure, match="removal_rate"):
        run_hook(hook, "filter_samples", filter_outputs(rate=None))


def test_a_warn_expectation_reports_but_does_not_stop(hook, caplog):
    outputs = filter_outputs()
    outputs["filtered_samples"]["kept"] = [True, False]
    outputs["filter_report"]["removal_rate"] = 0.95  # > 0.9 is a warn-severity expectation
    run_hook(hook, "filter_samples", outputs)
    report = (hook[2] / "filter.md").read_text()
    assert "passed with warnings" in report and "| warn | warn |" in report
    assert any("gate filter (warn)" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------- split
def split_outputs(n_groups: int = 10, train_share: float = 0.8):
    rows = []
    for g in range(n_groups):
        split = "train" if g < round(n_groups * train_share) else "val"
        for gen in GENERATORS:
            rows.append({"item_id": f"b{g}-{gen}", "split": split, "kind": "edited", "image_key": f"b{g}-{gen}",
                         "label_key": f"b{g}-{gen}", "base_id": f"b{g}", "group_id": f"g{g}", "generators": [gen]})
    table = pd.DataFrame(rows)
    protocols = pd.DataFrame([{"protocol": "random", "kind": "random", "status": "ok", "split_names": ["train", "val"],
                               "ratios": [0.8, 0.2], "held_out": [], "train_on": ""}])
    protocols = contract_table("split_protocols", protocols)
    return {"split_tables": {"random": table}, "split_protocols": protocols}


@pytest.mark.parametrize("breakage", [None, "leak", "ratio", "generator_missing"])
def test_split_gate(hook, breakage):
    outputs = split_outputs(train_share=0.5 if breakage == "ratio" else 0.8)
    table = outputs["split_tables"]["random"]
    if breakage is None or breakage == "ratio":
        expected = "column_A='allowed'"
    elif breakage == "leak":  # one base image's variants in train and val
        table.loc[table["item_id"] == "b0-telea", ["split", "group_id"]] = ["val", "g0"]
        expected = "'base_id': 'b0'"
    else:
        table.drop(table[table["generators"].map(lambda g: "tiny-sd" in g) & (table["split"] == "train")].index,
                   inplace=True)
        expected = "'generator': 'tiny-sd'"
    if breakage is None:
        run_hook(hook, "split_samples", outputs)
        return
    with pytest.raises(GateFailure) as failure:
        run_hook(hook, "split_samples", outputs)
    assert "gate 'split'" in str(failure.value) and expected in str(failure.value), str(failure.value)


def test_every_gate_has_a_suite_and_the_suites_name_real_tables(conf):
    gates, params = conf
    assert set(GATES) <= set(gates)
    ctx = GateContext(params=params, generators=GENERATORS)
    result = run_gate(GATES["filter"], filter_outputs(), gates["filter"], ctx)
    assert result.passed and {o.table for o in result.outcomes} == set(gates["filter"]["tables"])


@pytest.mark.slow
def test_kedro_run_stops_at_the_split_gate_with_a_report(project_copy: Path):
    """`kedro run --pipeline split` on a dataset whose only tiny-sd edits sit in val groups: the
    split gate stops the run, names itself, and `splits` is never written."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    data = project_copy / "data" / "05_model_input"
    data.mkdir(parents=True)
    (project_copy / "data" / "02_intermediate").mkdir(parents=True)
    groups = [f"g{i}" for i in range(10)]
    manifest = contract_table("base_manifest", pd.DataFrame({"base_id": groups, "group_id": groups, "kind": "real"}))
    manifest.to_parquet(project_copy / "data" / "02_intermediate" / "base_manifest.parquet")
    rows = [{"sample_id": f"{g}-v{k}", "base_id": g, "group_id": g, "last_generator": gen, "generators": [gen],
             "kept": True} for g in groups for k, gen in enumerate(["telea", "navier_stokes"])]
    # tiny-sd only ever edited photos that the seed-0 cut puts into val
    from pipelines.split.nodes import assign_groups

    val = [g for g, s in assign_groups(groups, ["train", "val"], [0.8, 0.2], 0).items() if s == "val"]
    rows += [{"sample_id": f"{g}-v9", "base_id": g, "group_id": g, "last_generator": "tiny-sd", "generators": ["tiny-sd"],
              "kept": True} for g in val]
    contract_table("filtered_samples", pd.DataFrame(rows)).to_parquet(data / "filtered_samples.parquet")

    bootstrap_project(project_copy)
    with pytest.raises(GateFailure) as failure:
        with KedroSession.create(project_path=project_copy, env="tiny") as session:
            session.run(pipeline_name="split")
    message = str(failure.value)
    assert "gate 'split'" in message and "n_train_edited" in message and "tiny-sd" in message
    report = project_copy / "data" / "08_reporting" / "gates" / "split.md"
    assert "FAILED" in report.read_text() and "tiny-sd" in report.read_text()
    assert not (data / "splits.parquet").exists()
