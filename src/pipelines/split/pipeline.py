"""Split pipeline: filtered samples + base manifest -> a leakage-free split table."""

from kedro.pipeline import Node, Pipeline

from pipelines.split.nodes import split_samples


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            split_samples,
            inputs=["filtered_samples", "base_manifest", "params:split"],
            outputs="splits",
            name="split_samples",
            tags=["split"],
        ),
    ])
