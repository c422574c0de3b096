"""The evaluate stage: protocol bookkeeping on small tables, and the whole evaluate pipeline on a
synthetic in-memory dataset, down to the HTML report and comparison page on disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.text import TextDataset

from models.detectors import create_detector, detector_state
from models.metrics import DetectionMetrics
from pipelines.contract.params import EvaluateParams, params_of
from pipelines.evaluate import create_pipeline, nodes, report
from pipelines.evaluate.protocols import (
    PROTOCOLS,
    area_bucket_labels,
    breakdown_groups,
    held_out_groups,
    item_table,
    selected_protocols,
)

REPO = Path(__file__).resolve().parents[2]
SIZE = 32
GENERATORS = ["telea", "sdxl", "sdxl-lora"]  # labels 1, 2, 3; sdxl-lora is a variant of sdxl


@pytest.fixture(autouse=True, scope="module")
def _one_thread_and_no_open_figures():
    """One torch thread: these models are tiny, and on a shared 2-core machine a second thread
    only waits for the first (10x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plt.close("all")


# --- protocol bookkeeping --------------------------------------------------------------------


def synthetic_tables():
    """6 edited samples (1-3 turns) + 2 authentic bases, all in val."""
    turns = {  # sample: [(generator, region kind)], in turn order
        "s1": [("telea", "thing")],
        "s2": [("sdxl", "stuff")],
        "s3": [("telea", "thing"), ("sdxl", "background")],
        "s4": [("sdxl-lora", "thing")],
        "s5": [("sdxl", "thing"), ("sdxl-lora", "stuff")],
        "s6": [("telea", "thing"), ("sdxl", "thing"), ("telea", "background")],
    }
    areas = {"s1": 0.05, "s2": 0.25, "s3": 0.45, "s4": 0.1, "s5": 0.3, "s6": 0.9}
    provenance = pd.DataFrame([
        {"sample_id": s, "turn": k + 1, "generator": g, "label": GENERATORS.index(g) + 1, "kind": kind}
        for s, edits in turns.items() for k, (g, kind) in enumerate(edits)
    ])
    samples = pd.DataFrame([
        {"sample_id": s, "n_turns": len(e), "generators": [g for g, _ in e], "last_generator": e[-1][0],
         "edited_area_ratio": areas[s], "region_kinds": [k for _, k in e]} for s, e in turns.items()
    ])
    rows = [{"item_id": s, "split": "val", "kind": "edited", "image_dataset": "edited_images", "image_key": s,
             "label_key": s, "base_id": f"b{s}", "group_id": f"g{s}", "last_generator": e[-1][0]} for s, e in turns.items()]
    rows += [{"item_id": f"a{k}-authentic", "split": "val", "kind": "authentic", "image_dataset": "base_images",
              "image_key": f"a{k}", "label_key": "", "base_id": f"a{k}", "group_id": f"a{k}", "last_generator": ""}
             for k in range(2)]
    rows += [{**rows[0], "item_id": "t1", "split": "train", "image_key": "s1", "label_key": "s1"}]
    return pd.DataFrame(rows), samples, provenance


def val_items():
    splits, samples, provenance = synthetic_tables()
    rows = splits[splits["split"] == "val"].reset_index(drop=True)
    return item_table(rows, samples, provenance)


def test_selected_protocols_accepts_lists_single_names_and_plus_joined():
    assert selected_protocols(None) == list(PROTOCOLS)
    assert selected_protocols("all") == list(PROTOCOLS)
    assert selected_protocols("robustness") == ["in_domain", "robustness"]
    assert selected_protocols("lora_as_parent+breakdowns") == ["in_domain", "breakdowns", "lora_as_parent"]
    assert selected_protocols(["cross_generator"]) == ["in_domain", "cross_generator"]
    with pytest.raises(ValueError, match="known"):
        selected_protocols("robustnes")


def test_item_table_reads_turns_from_provenance():
    items = val_items()
    s6 = items.set_index("item_id").loc["s6"]
    assert s6["generators"] == ["telea", "sdxl", "telea"] and s6["last_generator"] == "telea" and s6["n_turns"] == 3
    assert s6["region_kinds"] == ["thing", "thing", "background"] and s6["edited_area_ratio"] == 0.9
    authentic = items[items["kind"] == "authentic"]
    assert len(authentic) == 2 and (authentic["n_turns"] == 0).all()


def test_breakdown_groups_membership_buckets_and_authentic_negatives():
    items = val_items()
    ids = lambda positions: sorted(items.loc[positions, "item_id"])  # noqa: E731
    authentic = ["a0-authentic", "a1-authentic"]
    last = breakdown_groups(items, "generator")
    assert ids(last["telea"]) == sorted(["s1", "s6", *authentic])
    assert ids(last["sdxl-lora"]) == sorted(["s4", "s5", *authentic])
    any_turn = breakdown_groups(items, "generator", membership="any", include_authentic=False)
    assert ids(any_turn["sdxl"]) == ["s2", "s3", "s5", "s6"]
    only = breakdown_groups(items, "generator", membership="all", include_authentic=False)
    assert ids(only["telea"]) == ["s1"] and ids(only["sdxl"]) == ["s2"]
    turns = breakdown_groups(items, "turns", include_authentic=False)
    assert list(turns) == ["1", "2", "3"] and ids(turns["2"]) == ["s3", "s5"]
    buckets = breakdown_groups(items, "area_bucket", include_authentic=False)
    assert list(buckets) == ["0-20%", "20-40%", "40-60%", "80-100%"]
    assert ids(buckets["0-20%"]) == ["s1", "s4"] and ids(buckets["80-100%"]) == ["s6"]
    kinds = breakdown_groups(items, "region_kind", include_authentic=False)
    assert ids(kinds["background"]) == ["s3", "s6"] and ids(kinds["stuff"]) == ["s2", "s5"]
    assert area_bucket_labels([0.2, 0.4, 0.6, 0.8, 1.0])[0] == "0-20%"
    with pytest.raises(ValueError, match="known"):
        breakdown_groups(items, "colour")


def test_held_out_groups_separate_unseen_from_seen_generators():
    items = val_items()
    ids = lambda positions: sorted(items.loc[positions, "item_id"])  # noqa: E731
    groups = held_out_groups(items, ["sdxl-lora", "flux"], include_authentic=False)
    assert ids(groups["held_out_set"]) == ["s4", "s5"]
    assert ids(groups["seen_set"]) == ["s1", "s2", "s3", "s6"]  # no turn by a held-out generator
    assert set(groups["per_generator"]) == {"sdxl-lora"} and groups["missing"] == ["flux"]
    strict = held_out_groups(items, ["sdxl-lora"], membership="all", include_authentic=True)
    assert ids(strict["held_out_set"]) == ["a0-authentic", "a1-authentic", "s4"]


def test_cross_generator_reads_held_out_generators_from_params_or_checkpoint():
    items = val_items()
    metrics = DetectionMetrics(["untouched", "edited"], pixel_level=False)
    metrics.update(np.linspace(0, 1, len(items)), (items["kind"] == "edited").astype(int))
    from_params = nodes._cross_generator(metrics, items, params_of(
        EvaluateParams,
        {"protocols": {"cross_generator": {"held_out": ["telea"]}}}), {"held_out_generators": ["sdxl"]})
    assert from_params["held_out"] == ["telea"] and from_params["source"].startswith("params")
    assert from_params["held_out_set"]["n_fake"] == 2 and from_params["held_out_set"]["n_real"] == 2  # s1, s6
    from_checkpoint = nodes._cross_generator(metrics, items, params_of(EvaluateParams, {}), {"held_out_generators": ["sdxl"]})
    assert from_checkpoint["source"].startswith("checkpoint") and from_checkpoint["held_out_set"]["n_fake"] == 2
    assert "skipped" in nodes._cross_generator(metrics, items, params_of(EvaluateParams, {}), {})


def test_robustness_conditions_from_params():
    conditions = nodes.robustness_conditions({"jpeg": [60, 80], "blur": [1]})
    assert conditions == [("jpeg", 60.0), ("jpeg", 80.0), ("blur", 1.0)]
    assert nodes.condition_name("resize", 0.5) == "resize x0.5"
    with pytest.raises(KeyError, match="known"):
        nodes.robustness_conditions({"sharpen": [1]})


# --- the evaluate pipeline end to end ----------------------------------------------------------


def synthetic_data():
    rng = np.random.default_rng(0)
    splits, samples, provenance = synthetic_tables()
    edited, labels, bases = {}, {}, {}
    for sample_id, turns in provenance.groupby("sample_id"):
        label_map = np.zeros((SIZE, SIZE), np.uint8)
        for k, row in enumerate(turns.itertuples()):
            top = int(rng.integers(0, SIZE - 12))
            label_map[top:top + 10, 4 + 8 * k: 16 + 8 * k] = row.label
        image = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        image[label_map > 0] = 255 - image[label_map > 0] // 4  # edits look different
        edited[sample_id], labels[sample_id] = image, label_map
    for k in range(2):
        bases[f"a{k}"] = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    lazy = lambda arrays: {k: (lambda v=v: v) for k, v in arrays.items()}  # noqa: E731
    return splits, samples, provenance, lazy(edited), lazy(labels), lazy(bases)


def checkpoint(task: str, held_out: list[str] | None = None, model: str = "deeplabv3plus",
               kwargs: dict | None = None) -> dict:
    """A randomly initialised registry detector, saved as the train stage saves it."""
    torch.manual_seed(0)
    names = ["untouched", "edited"] if task == "binary" else ["untouched", *GENERATORS]
    model = create_detector(model, num_classes=len(names), **(kwargs or {"encoder_name": "resnet18"}))
    state, config = detector_state(model)
    out = {"detector": config, "task": task, "class_names": names, "history": {"steps": 0}}
    if held_out:
        out["held_out_generators"] = held_out
    return {"state": state, "config": out}


def evaluate_params(**overrides) -> dict:
    params = yaml.safe_load((REPO / "conf" / "base" / "parameters_evaluate.yml").read_text())["evaluate"]
    params["generators"] = [{"name": g} for g in GENERATORS]  # the ${globals:generators} of these tables
    params["protocols"]["robustness"] = {"jpeg": [60], "blur": [1.0]}
    params.update({"n_overlays": 3, "batch_size": 8, "chunk_size": 8, "label_parent": {"sdxl-lora": "sdxl"}}, **overrides)
    return params


def run_evaluate(tmp_path: Path, params: dict, model: str = "deeplabv3plus", kwargs: dict | None = None,
                 splits_edit=None, detector_edit=None) -> DataCatalog:
    """The evaluate pipeline on the synthetic data; ``splits_edit(splits)`` changes the split table
    in place and ``detector_edit(checkpoint)`` the checkpoints, for the cases that need it."""
    splits, samples, provenance, edited, labels, bases = synthetic_data()
    if splits_edit is not None:
        splits_edit(splits)
    detector_edit = detector_edit or (lambda saved: saved)
    catalog = DataCatalog({
        "metrics_binary": JSONDataset(filepath=str(tmp_path / "metrics_binary.json")),
        "metrics_semantic": JSONDataset(filepath=str(tmp_path / "metrics_semantic.json")),
        "evaluation_report": TextDataset(filepath=str(tmp_path / "report.html")),
        "evaluation_comparison": TextDataset(filepath=str(tmp_path / "comparison.html")),
        "paper_tables": TextDataset(filepath=str(tmp_path / "paper_tables.md")),
    })
    inputs = {"splits": splits, "samples": samples, "provenance": provenance, "edited_images": edited,
              "label_maps": labels, "base_images": bases, "params:evaluate": params,
              "detector_binary": detector_edit(checkpoint("binary", ["sdxl-lora"], model, kwargs)),
              "detector_semantic": detector_edit(checkpoint("semantic", ["sdxl-lora"], model, kwargs)),
              "detector_variants": {}, "split_tables": {}}
    for name, value in inputs.items():
        catalog[name] = MemoryDataset(value, copy_mode="assign")
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


PAPER_TABLE = {
    "id": "t2", "title": "Table 2: segmentation", "source": "a paper, section 4", "scale": 100, "digits": 1,
    "columns": ["Binary mIoU", "Binary mIoU @ JPEG 60", "Semantic acc"],
    "notes": ["bF1 per image"],
    "rows": [
        {"label": "this run", "cells": [
            {"ours": "binary/protocols/in_domain/pixel/miou", "paper": 71.5},
            {"ours": "binary/protocols/robustness/conditions/JPEG 60/pixel/miou", "paper": 12.0},
            {"ours": "semantic/pixel/accuracy", "paper": None}]},
        {"label": "other model", "cells": [
            {"ours": None, "na": "FCN-8s is not this run's train.model", "paper": 60.0},
            {"ours": "binary/protocols/no_such_protocol/pixel/miou", "paper": 1.0},
            {"ours": "binary/protocols/cross_generator/seen_set/pixel/miou", "paper": 2.0}]},
    ]}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> Path:
    """Every protocol, run once for the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("evaluate")
    run_evaluate(folder, evaluate_params(paper_tables=[PAPER_TABLE]))
    plt.close("all")
    return folder


def test_evaluate_pipeline_writes_every_protocol_and_a_self_contained_report(full_run):
    tmp_path = full_run
    for task in ("binary", "semantic"):
        metrics = json.loads((tmp_path / f"metrics_{task}.json").read_text())
        # every protocol base runs (the BR-Gen tables only where a recipe asks for them)
        assert set(metrics["protocols"]) == set(selected_protocols(evaluate_params()["run"])) == set(PROTOCOLS) - {"brgen"}
        assert metrics["n_images"] == 8 and metrics["pixel"]["boundary_tolerance_px"] == 2
        assert metrics["pixel_per_image"]["manipulated"]["n_images"] == 6
        assert metrics["pixel_per_image"]["all"]["n_images"] == 8
        breakdowns = metrics["protocols"]["breakdowns"]
        assert set(breakdowns["generator"]) == set(GENERATORS) and list(breakdowns["turns"]) == ["1", "2", "3"]
        robustness = metrics["protocols"]["robustness"]["conditions"]
        assert [c["name"] for c in robustness] == ["JPEG 60", "blur sigma 1"]
        assert all(c["n_images"] == 8 and c["pixel"]["miou"] is not None for c in robustness)
        cross = metrics["protocols"]["cross_generator"]
        assert cross["held_out"] == ["sdxl-lora"] and cross["held_out_set"]["n_fake"] == 2
        assert cross["seen_set"]["n_fake"] == 4 and cross["source"].startswith("checkpoint")
        (pair,) = metrics["protocols"]["lora_as_parent"]["pairs"]
        assert pair["variant"] == "sdxl-lora" and pair["variant_as_parent"]["n_fake"] == 2
        assert pair["relabelled"] == (task == "semantic")
        assert metrics["conventions"]["image_score"].startswith("max over pixels")
    semantic = json.loads((tmp_path / "metrics_semantic.json").read_text())
    relabelled = semantic["protocols"]["lora_as_parent"]["pairs"][0]["variant_as_parent"]
    # the variant's pixels count as the parent's: no ground-truth pixel of class sdxl-lora is left
    assert sum(relabelled["confusion_matrix"][3]) == 0 and sum(relabelled["confusion_matrix"][2]) > 0

    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing external
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 8  # confusion x2, 4 breakdown bars, robustness curves, example grids
    for anchor in ("headline", "per-class", "breakdowns", "robustness", "cross-generator", "lora", "examples", "conventions"):
        assert f'id="{anchor}"' in page
    for text in ("DiffSeg30k Table 2", "IMDL-BenCo", "manipulated images only", "all images", "R@50 fake",
                 "bF1 tolerance 2 px", "JPEG 60", "held-out: sdxl-lora", "sdxl-lora as sdxl"):
        assert text in page, text
    assert page.count("<table>") >= 10

    comparison = (tmp_path / "comparison.html").read_text()
    assert comparison.count("<tr>") >= 2 + 6  # header rows + (clean, JPEG 60, blur) x 2 tasks
    assert "semantic / deeplabv3plus: JPEG 60" in comparison and "data:image/png;base64," in comparison


def test_a_single_protocol_runs_alone_streaming_in_chunks(tmp_path):
    params = evaluate_params(run="robustness", n_overlays=1, chunk_size=3, batch_size=3)
    params["protocols"]["robustness"] = {"resize": [0.5]}
    catalog = run_evaluate(tmp_path, params)
    metrics = catalog.load("metrics_binary")
    assert set(metrics["protocols"]) == {"in_domain", "robustness"}
    assert metrics["n_images"] == 8 and metrics["protocols"]["robustness"]["conditions"][0]["n_images"] == 8
    page = (tmp_path / "report.html").read_text()
    assert 'id="robustness"' in page and 'id="breakdowns"' not in page and 'id="lora"' not in page
    assert 'id="examples"' in page and "resize x0.5" in page


def test_image_level_models_get_image_metrics_only(tmp_path):
    """A real image-level entry of the registry (CNNSpot, ResNet-18 backbone to keep it small),
    loaded from its checkpoint by the evaluate node like any other."""
    catalog = run_evaluate(tmp_path, evaluate_params(run=["breakdowns", "robustness"]), model="cnnspot",
                           kwargs={"backbone": "resnet18"})
    metrics = catalog.load("metrics_binary")
    assert metrics["pixel_level"] is False and metrics["pixel"] is None and metrics["pixel_per_image"] is None
    assert metrics["image"]["accuracy"] is not None and "image-level classifier" in metrics["notes"][0]
    for group in metrics["protocols"]["breakdowns"]["generator"].values():
        assert group["pixel"] is None and group["image"] is not None
    page = (tmp_path / "report.html").read_text()
    assert "pixel metrics are None" in page


def test_report_cli_compares_saved_runs(full_run, tmp_path, capsys):
    combined = {"binary": json.loads((full_run / "metrics_binary.json").read_text()),
                "semantic": json.loads((full_run / "metrics_semantic.json").read_text())}
    (tmp_path / "metrics_binary.json").write_text(json.dumps(combined["binary"]))
    (tmp_path / "metrics.json").write_text(json.dumps(combined))
    out = tmp_path / "cmp.html"
    report.main(["compare", f"modelA={tmp_path / 'metrics.json'}", f"modelB={tmp_path / 'metrics_binary.json'}",
                 "--out", str(out), "--clean-only"])
    page = out.read_text()
    for name in ("modelA / binary: clean", "modelA / semantic: clean", "modelB / binary: clean"):
        assert name in page
    assert "JPEG" not in page.split("<table>")[1]  # --clean-only
    assert "3 runs" in capsys.readouterr().out


def test_paper_tables_put_each_number_beside_the_papers_and_say_why_a_cell_is_empty(full_run):
    """evaluate.paper_tables: our number (scaled and rounded as the paper prints it) next to the
    published one, in markdown and in the report; a cell that cannot be filled names the reason."""
    metrics = {task: json.loads((full_run / f"metrics_{task}.json").read_text()) for task in ("binary", "semantic")}
    text = (full_run / "paper_tables.md").read_text()
    miou = metrics["binary"]["protocols"]["in_domain"]["pixel"]["miou"]
    jpeg = next(c for c in metrics["binary"]["protocols"]["robustness"]["conditions"] if c["name"] == "JPEG 60")
    row = next(line for line in text.splitlines() if line.startswith("| this run"))
    assert row == (f"| this run | {100 * miou:.1f} | 71.5 | {100 * jpeg['pixel']['miou']:.1f} | 12 | "
                   f"{100 * metrics['semantic']['pixel']['accuracy']:.1f} | - |")
    other = next(line for line in text.splitlines() if line.startswith("| other model"))
    assert other == "| other model | n/a [1] | 60 | n/a [2] | 1 | " + (
        f"{100 * metrics['binary']['protocols']['cross_generator']['seen_set']['pixel']['miou']:.1f} | 2 |")
    assert "1. other model: FCN-8s is not this run's train.model" in text
    assert "2. other model: not computed: binary/protocols/no_such_protocol" in text
    html = (full_run / "report.html").read_text()
    assert 'id="paper-t2"' in html and "Table 2: segmentation" in html and "not computed" in html
    assert html.index("paper-t2") < html.index('id="headline"')


def test_paper_table_paths_stop_at_a_skipped_protocol_and_reject_a_short_row():
    from pipelines.contract.params import PaperTable
    from pipelines.evaluate.paper_tables import build_tables, resolve

    metrics = {"binary": {"protocols": {"lora_as_parent": {"skipped": "no variants configured"},
                                        "robustness": {"conditions": [{"name": "JPEG 60", "miou": 0.25}]}}}}
    assert resolve(metrics, "binary/protocols/lora_as_parent/pairs/0/miou") == (
        None, "binary/protocols/lora_as_parent: skipped: no variants configured")
    assert resolve(metrics, "binary/protocols/robustness/conditions/JPEG 60/miou") == (0.25, "")
    assert resolve(metrics, "binary/protocols/robustness/conditions/0/miou") == (0.25, "")
    assert resolve(metrics, "binary/protocols/robustness/conditions/3/miou")[0] is None
    assert resolve(metrics, "binary/protocols/robustness")[1] == "not a number: binary/protocols/robustness"
    short = PaperTable(id="x", title="x", columns=["a", "b"], rows=[{"label": "r", "cells": [{"paper": 1.0}]}])
    with pytest.raises(ValueError, match="'x' row 'r': 1 cells for 2 columns"):
        build_tables(metrics, [short])


def test_each_variant_is_evaluated_on_the_table_it_trained_from_with_its_own_settings():
    """train.variants (DiffSeg30k Tables 2, 5-7 from one run): a variant's checkpoint names its
    split table; evaluate reads that table, runs in_domain only plus evaluate.variants[name]."""
    splits, samples, provenance, edited, labels, bases = synthetic_data()
    leave_out = splits.assign(split=splits["split"].replace({"val": "test"}), protocol="leave-out-x")
    pair, fcn = checkpoint("binary"), checkpoint("semantic")
    pair["config"]["dataset"] = {"table": "split_tables/leave-out-x", "protocol": "leave-out-x", "split": "train"}
    fcn["config"]["dataset"] = {"table": "splits", "protocol": "random", "split": "train"}
    params = evaluate_params()
    out = nodes.evaluate_variants({"pair/binary": pair, "fcn/semantic": lambda: fcn, "empty/binary": pair},
                                  splits, {"leave-out-x": lambda: leave_out}, samples, provenance, edited, labels,
                                  bases, {**params, "variants": {"pair": {"split": "test"}, "empty": {"split": "nope"}}})
    assert out["pair"]["binary"]["split"] == "test" and out["fcn"]["semantic"]["split"] == "val"
    assert out["pair"]["binary"]["n_images"] == int((leave_out["split"] == "test").sum())
    assert list(out["fcn"]["semantic"]["protocols"]) == ["in_domain"]  # not the main run's every protocol
    assert out["empty"]["binary"] == {"skipped": "split_tables/leave-out-x has no 'nope' items"}
    combined = nodes.combine_metrics(out["pair"]["binary"], out["fcn"]["semantic"], out)
    assert "miou" in combined["variants"]["fcn"]["semantic"]["protocols"]["in_domain"]["pixel"]
