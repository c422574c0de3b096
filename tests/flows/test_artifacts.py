"""A run's results as Prefect artifacts, read back from the loopback Prefect server (conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest

from flows.artifacts import publish_run_artifacts
from flows.manifest import DataRoot

METRICS = {task: {"model": "srm_unet", "split": "val", "n_images": 54,
                  "pixel": {"miou": miou, "accuracy": 0.9, "boundary_f1": 0.3},
                  "pixel_per_image": {"manipulated": {"f1": 0.61, "iou": 0.5}},
                  "image": {"average_precision": 0.97, "auc": 0.96, "accuracy": 0.9}}
           for task, miou in (("binary", 0.55), ("semantic", 0.41))}


def _data_root(tmp_path: Path) -> DataRoot:
    reporting = tmp_path / "08_reporting"
    (reporting / "gates").mkdir(parents=True)
    (reporting / "gates" / "ingest.md").write_text("# Gate `ingest`: passed\n\n| expectation | ok |\n| --- | --- |\n"
                                                   "| expect_table_row_count_to_be_between | yes |\n")
    (reporting / "gates" / "filter.md").write_text("# Gate `filter`: passed\n")
    (reporting / "filter_report.json").write_text(json.dumps({
        "n_samples": 10, "n_kept": 8, "n_dropped": 2, "removal_rate": 0.2,
        "per_generator": {"telea": {"kept": 5, "dropped": 1}, "tiny-sd": {"kept": 3, "dropped": 1}}}))
    (reporting / "metrics.json").write_text(json.dumps(METRICS))
    (reporting / "report.html").write_text("<html></html>")
    return DataRoot(url=str(tmp_path), fs=fsspec.filesystem("file"), protocol="file", path=str(tmp_path))


def _artifacts_of(client, flow_run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {artifact.key: artifact for artifact in found}


@pytest.fixture(scope="module")
def run_flow(prefect_api):
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def run(root: DataRoot, stages: list[str]):
        @flow(name="artifact-test")
        def publish():
            return publish_run_artifacts(root, stages)

        with temporary_settings({PREFECT_API_URL: prefect_api}):
            state = publish(return_state=True)
        assert state.is_completed(), state
        return state.state_details.flow_run_id

    return run


def test_a_full_run_publishes_gates_filter_report_metrics_and_the_report_link(run_flow, client, tmp_path):
    root = _data_root(tmp_path)
    artifacts = _artifacts_of(client, run_flow(root, ["ingest", "filter", "train", "evaluate"]))
    assert set(artifacts) == {"gate-results", "filter-report", "metrics", "report"}
    assert artifacts["gate-results"].type == "markdown"
    assert "Gate `ingest`: passed" in artifacts["gate-results"].data and "Gate `filter`" in artifacts["gate-results"].data
    filter_rows = json.loads(artifacts["filter-report"].data)
    assert {"generator": "telea", "kept": 5, "dropped": 1} in filter_rows
    assert filter_rows[-1]["removal_rate"] == 0.2
    metric_rows = {row["task"]: row for row in json.loads(artifacts["metrics"].data)}
    assert metric_rows["binary"]["miou"] == 0.55 and metric_rows["semantic"]["miou"] == 0.41
    assert metric_rows["binary"]["pixel_f1"] == 0.61 and metric_rows["binary"]["image_ap"] == 0.97
    assert artifacts["report"].type == "markdown"  # Prefect stores a link as a markdown link
    assert f"file://{tmp_path}/08_reporting/report.html" in artifacts["report"].data


def test_a_generate_run_publishes_only_what_it_made(run_flow, client, tmp_path):
    root = _data_root(tmp_path)
    artifacts = _artifacts_of(client, run_flow(root, ["ingest", "perceive"]))
    assert set(artifacts) == {"gate-results"}
    assert "Gate `filter`" not in artifacts["gate-results"].data
