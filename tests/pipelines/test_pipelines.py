"""Pipeline slice tests (each stage's Kedro pipeline on an in-memory catalog), one full
`kedro run` smoke test through a KedroSession at tiny settings, and the first Prefect flow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro_datasets.json import JSONDataset
from kedro.runner import SequentialRunner

from models.cache import ModelCache
from pipelines.pipeline_registry import register_pipelines, stages_of

TINY = 48


@pytest.fixture(scope="module")
def memory_catalog(tmp_path_factory):
    """One in-memory catalog that the stage slices below fill in order."""
    model_dir = tmp_path_factory.mktemp("tiny-sd") / "tiny-sd-inpaint"
    generators = [{"name": "telea"}, {"name": "navier_stokes"},
                  {"name": "tiny-sd", "kwargs": {"model": str(model_dir), "steps": 2}}]
    catalog = DataCatalog()
    catalog["model_cache"] = MemoryDataset(ModelCache(), copy_mode="assign")  # shared, never copied
    # read by the paper-tables node too, so an in-memory copy would be released once consumed
    catalog["evaluation_metrics"] = JSONDataset(filepath=str(tmp_path_factory.mktemp("reporting") / "metrics.json"))
    catalog["params:ingest"] = {"source": "sample", "image_size": TINY, "crops_per_photo": 2,
                                "sample": {"names": ["astronaut", "coffee", "rocket"]}}
    catalog["params:perceive"] = {"seed": 0, "perceiver": "auto", "fallback_perceiver": "superpixel",
                                  "variants_per_base": 2, "iou_threshold": 0.7, "turn_count_weights": [1, 4, 5],
                                  "min_area_ratio": 0.02, "max_area_ratio": 0.7,
                                  "edit_type_weights": {"attribute": 1, "addition": 1, "removal": 1}}
    catalog["params:inpaint"] = {"seed": 0, "generators": generators, "distinct_generators_per_sample": True}
    catalog["params:filter"] = {"checks": [{"scorer": "sharpness", "min": 0.0}]}
    catalog["params:split"] = {"names": ["train", "val"], "ratios": [0.67, 0.33], "seed": 0, "add_authentic": True}
    catalog["params:train"] = {"dataset": {"split": "train"}, "seed": 0, "generators": generators, "model": "deeplabv3plus",
                               "model_kwargs": {"encoder_name": "resnet18"},
                               "trainer": {"steps": 2, "batch_size": 2, "lr": 1e-3}}
    catalog["params:evaluate"] = {"split": "val", "batch_size": 4, "boundary_tolerance_px": 2,
                                  "image_threshold": 0.5, "n_overlays": 2}
    return catalog


def _run(stage: str, catalog: DataCatalog) -> None:
    SequentialRunner().run(register_pipelines()[stage], catalog)


def test_stage_slices_in_order(memory_catalog):
    catalog = memory_catalog
    _run("ingest", catalog)
    manifest = catalog.load("base_manifest")
    assert len(manifest) == 6 and set(manifest["kind"]) == {"real"}

    _run("perceive", catalog)
    regions = catalog.load("regions")
    assert set(regions["base_id"]) <= set(manifest["base_id"])
    assert regions.groupby("sample_id").size().between(1, 3).all()

    _run("inpaint", catalog)
    samples, provenance = catalog.load("samples"), catalog.load("provenance")
    assert len(provenance) == len(regions)
    labels = catalog.load("label_maps")
    for sample_id in samples["sample_id"]:
        assert set(np.unique(labels[sample_id]())) <= {0, 1, 2, 3}

    _run("filter", catalog)
    filtered = catalog.load("filtered_samples")
    assert filtered["kept"].all() and "quality_sharpness" in filtered

    _run("split", catalog)
    splits = catalog.load("splits")
    assert (splits.groupby("group_id")["split"].nunique() == 1).all()
    assert {"edited", "authentic"} <= set(splits["kind"])

    _run("train", catalog)
    binary, semantic = catalog.load("detector_binary"), catalog.load("detector_semantic")
    assert binary["config"]["class_names"] == ["untouched", "edited"]
    assert semantic["config"]["class_names"] == ["untouched", "telea", "navier_stokes", "tiny-sd"]
    assert binary["config"]["history"]["steps"] == 2

    _run("evaluate", catalog)
    metrics = catalog.load("evaluation_metrics")
    for task in ("binary", "semantic"):
        pixel = metrics[task]["pixel"]
        assert 0.0 <= pixel["accuracy"] <= 1.0
        assert pixel["boundary_tolerance_px"] == 2
        assert metrics[task]["n_images"] == (splits["split"] == "val").sum()
    assert len(catalog.load("overlays_binary")) == 2


def test_registry_names_every_stage_and_composites():
    pipelines = register_pipelines()
    assert {"ingest", "perceive", "inpaint", "filter", "split", "train", "evaluate", "generate", "__default__"} <= set(pipelines)
    assert stages_of("generate") == ["ingest", "perceive", "inpaint", "filter", "split", "stats"]
    assert len(pipelines["__default__"].nodes) == sum(len(pipelines[s].nodes) for s in stages_of("__default__"))
    with pytest.raises(KeyError, match="known"):
        stages_of("nope")


@pytest.mark.slow
def test_full_kedro_run_at_tiny_settings(project_copy: Path):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny") as session:
        session.run()
    reporting = project_copy / "data" / "08_reporting"
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics) == {"binary", "semantic"}
    assert metrics["semantic"]["class_names"][1:] == ["telea", "navier_stokes", "tiny-sd"]
    for name in ("confusion_matrix_binary.png", "confusion_matrix_semantic.png"):
        assert (reporting / name).stat().st_size > 1000
    assert len(list((reporting / "overlays").glob("*.png"))) == 4
    assert (project_copy / "data" / "06_models" / "tiny-sd-inpaint" / "model_index.json").exists()
    edited = sorted((project_copy / "data" / "04_feature" / "edited_images").glob("*.png"))
    labels = sorted((project_copy / "data" / "04_feature" / "label_maps").glob("*.png"))
    assert edited and [p.name for p in edited] == [p.name for p in labels]


@pytest.mark.slow
def test_prefect_flow_runs_a_named_kedro_pipeline(project_copy: Path):
    """The CLI a user runs: `python -m flows.kedro_flow ingest --env tiny`, in its own process
    (Prefect starts and stops its temporary local server there)."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(repo / "src")])}
    done = subprocess.run([sys.executable, "-m", "flows.kedro_flow", "ingest", "--env", "tiny"],
                          cwd=project_copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{\n"):])
    assert "ingest" in result
    assert "Completed" in done.stderr or "Completed" in done.stdout  # Prefect's own run-state log
    assert (project_copy / "data" / "02_intermediate" / "base_manifest.parquet").exists()
    # tiny env: astronaut, chelsea, coffee, rocket and the two views of the stereo motorcycle
    assert len(list((project_copy / "data" / "02_intermediate" / "base_images").glob("*.png"))) == 6
