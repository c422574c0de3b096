"""Split pipeline: filtered samples + base manifest -> every configured split protocol as a named
table (`split_tables`), their summary (`split_protocols`) and the one in use (`splits`)."""

from kedro.pipeline import Node, Pipeline

from pipelines.split.nodes import make_splits


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            make_splits,
            inputs=["filtered_samples", "base_manifest", "params:split"],
            outputs=["splits", "split_tables", "split_protocols"],
            name="split_samples",
            tags=["split"],
        ),
    ])
