"""Filter pipeline: edited images (+ prompts, base images) -> quality-scored samples table with
kept / drop_reason, and the filter report (kept / dropped per generator, edit type and reason)."""

from kedro.pipeline import Node, Pipeline

from pipelines.filter.nodes import filter_and_report


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            filter_and_report,
            inputs=["edited_images", "samples", "provenance", "base_images", "params:filter"],
            outputs=["filtered_samples", "filter_report"],
            name="filter_samples",
            tags=["filter"],
        ),
    ])
