"""Ingest pipelines: photos from the configured source -> base images + manifest (`ingest`), or a
published dataset -> base images, edited images, label maps and their tables (`import`)."""

from kedro.pipeline import Node, Pipeline

from pipelines.ingest.nodes import import_published, ingest_base_images, quarantine_report


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            ingest_base_images,
            inputs="params:ingest",
            outputs=["base_images", "base_manifest", "base_annotations", "ingest_issues"],
            name="ingest_photos",
            tags=["ingest"],
        ),
        Node(quarantine_report, inputs="ingest_issues", outputs="quarantine_report", name="report_quarantine",
             tags=["ingest"]),
    ])


def create_import_pipeline(**kwargs) -> Pipeline:
    """A published dataset (``ingest.source`` = imdl | brgen | opensdid | diffseg30k) as the
    datasets ingest .. inpaint would have written; run it instead of those stages."""
    return Pipeline([
        Node(
            import_published,
            inputs="params:ingest",
            outputs=["base_images", "base_manifest", "base_annotations", "edited_images", "label_maps",
                     "regions", "samples", "provenance", "ingest_issues"],
            name="import_published",
            tags=["import"],
        ),
        Node(quarantine_report, inputs="ingest_issues", outputs="quarantine_report", name="report_quarantine",
             tags=["import"]),
    ])
