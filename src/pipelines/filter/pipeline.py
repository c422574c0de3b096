"""Filter pipeline: edited images -> quality-scored samples table with kept / drop_reason."""

from kedro.pipeline import Node, Pipeline

from pipelines.filter.nodes import filter_samples


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            filter_samples,
            inputs=["edited_images", "samples", "params:filter"],
            outputs="filtered_samples",
            name="filter_samples",
            tags=["filter"],
        ),
    ])
