"""Filter pipeline: edited images (+ prompts, base images) -> quality-scored samples table with
kept / drop_reason, and the filter report (kept / dropped per generator, edit type and reason).

run_scoring scores every sample (resumable per sample); assemble_filter applies the thresholds
and writes the report (with BR-Gen's regeneration counts per generator)."""

from kedro.pipeline import Node, Pipeline

from pipelines.filter.nodes import assemble_filter, run_scoring


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(run_scoring, ["edited_images", "samples", "provenance", "base_images", "params:filter", "model_cache"],
             ["filter_scored_samples", "filter_scores", "filter_checks"], name="run_scoring", tags=["filter"]),
        Node(assemble_filter, ["filter_scored_samples", "filter_scores", "filter_checks", "provenance", "params:filter"],
             ["filtered_samples", "filter_report"], name="assemble_filter", tags=["filter"]),
    ])
