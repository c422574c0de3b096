"""Ingest pipeline: photos from the configured source -> base images + manifest."""

from kedro.pipeline import Node, Pipeline

from pipelines.ingest.nodes import ingest_photos


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            ingest_photos,
            inputs="params:ingest",
            outputs=["base_images", "base_manifest", "base_annotations"],
            name="ingest_photos",
            tags=["ingest"],
        ),
    ])
