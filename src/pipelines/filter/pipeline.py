"""Filter pipeline: edited images (+ prompts, base images) -> quality-scored samples table with
kept / drop_reason, and the filter report (kept / dropped per generator, edit type and reason).

run_scoring scores every sample (resumable); apply_thresholds marks kept / dropped; report_filter
summarises."""

from kedro.pipeline import Node, Pipeline

from pipelines.filter.nodes import apply_thresholds, report_filter, run_scoring


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(run_scoring, ["edited_images", "samples", "provenance", "base_images", "params:filter"],
             ["filter_scored_samples", "filter_scores", "filter_checks"], name="run_scoring", tags=["filter"]),
        Node(apply_thresholds, ["filter_scored_samples", "filter_scores", "filter_checks"], "filtered_samples",
             name="apply_thresholds", tags=["filter"]),
        Node(report_filter, ["filtered_samples", "filter_checks"], "filter_report", name="report_filter",
             tags=["filter"]),
    ])
