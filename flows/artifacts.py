"""A flow run's results as Prefect artifacts (the UI's Artifacts tab), so a user who schedules runs
from the UI sees what came out without opening files (issue 19):

- ``gate-results``   markdown: every data quality gate page this run wrote (``gate_reports``);
- ``filter-report``  table: kept / dropped per generator, and the removal rate (``filter_report``);
- ``metrics``        table: the headline metrics of both tasks (``evaluation_metrics``);
- ``report``         link: where the HTML report is (``evaluation_report``).

Only what the run's stages wrote is published (a generate run has no metrics); the artifacts read
the files the stages saved under the data root (local disk or S3), never recompute anything.
Keys are stable, so the UI shows each run's version of an artifact under one name.
"""

from __future__ import annotations

import json
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.manifest import DataRoot

# catalog paths relative to the data root (conf/base/catalog.yml)
GATES = "08_reporting/gates"
FILTER_REPORT = "08_reporting/filter_report.json"
METRICS = "08_reporting/metrics.json"
REPORT = "08_reporting/report.html"


def _read(root: DataRoot, key: str) -> str | None:
    path = root.fs_path(key)
    if not root.fs.exists(path):
        return None
    with root.fs.open(path, "r") as fh:
        return fh.read()


def gate_markdown(root: DataRoot, stages: list[str]) -> str | None:
    """The gate pages of ``stages`` (``<gate>.md`` under the gates folder), one after the other."""
    pages = [(stage, _read(root, f"{GATES}/{stage}.md")) for stage in stages]
    pages = [(stage, text) for stage, text in pages if text]
    if not pages:
        return None
    return "\n\n---\n\n".join(text for _, text in pages)


def filter_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per generator (kept, dropped) plus a total row with the removal rate."""
    rows = [{"generator": name, "kept": c.get("kept", 0), "dropped": c.get("dropped", 0)}
            for name, c in (report.get("per_generator") or {}).items()]
    rows.append({"generator": "all samples", "kept": report.get("n_kept"), "dropped": report.get("n_dropped"),
                 "removal_rate": round(float(report.get("removal_rate") or 0.0), 4)})
    return rows


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task of ``metrics.json``: model, pixel mIoU / accuracy / boundary F1, IMDL-BenCo
    per-image F1 and IoU over edited images, image AP / AUC / accuracy (None where undefined)."""
    rows = []
    for task in ("binary", "semantic"):
        m = metrics.get(task) or {}
        pixel, image = m.get("pixel") or {}, m.get("image") or {}
        per_image = (m.get("pixel_per_image") or {}).get("manipulated") or {}
        rows.append({
            "task": task, "model": m.get("model"), "split": m.get("split"), "n_images": m.get("n_images"),
            "miou": pixel.get("miou"), "pixel_accuracy": pixel.get("accuracy"), "boundary_f1": pixel.get("boundary_f1"),
            "pixel_f1": per_image.get("f1"), "pixel_iou": per_image.get("iou"),
            "image_ap": image.get("average_precision"), "image_auc": image.get("auc"),
            "image_accuracy": image.get("accuracy"),
        })
    return rows


def publish_run_artifacts(root: DataRoot, stages: list[str]) -> dict[str, str]:
    """Create the artifacts for a run that ran ``stages``; must be called inside a flow run.
    Returns {artifact key: artifact id} for what was published."""
    published: dict[str, str] = {}
    gates = gate_markdown(root, stages)
    if gates:
        published["gate-results"] = str(create_markdown_artifact(
            gates, key="gate-results", description=f"data quality gates of this run ({', '.join(stages)})"))
    if "filter" in stages and (text := _read(root, FILTER_REPORT)):
        published["filter-report"] = str(create_table_artifact(
            filter_rows(json.loads(text)), key="filter-report", description="filter: kept / dropped per generator"))
    if "evaluate" in stages and (text := _read(root, METRICS)):
        published["metrics"] = str(create_table_artifact(
            metric_rows(json.loads(text)), key="metrics", description=f"metrics.json under {root.url}"))
    if "evaluate" in stages and root.fs.exists(root.fs_path(REPORT)):
        url = f"{root.url.rstrip('/')}/{REPORT}"
        link = url if "://" in url else f"file://{url}"
        published["report"] = str(create_link_artifact(
            link, link_text="evaluation report (HTML)", key="report", description="the report of this run"))
    return published
