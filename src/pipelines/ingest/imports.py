"""The `import` stage: a published dataset in place of ingest .. inpaint (see nodes.import_published)."""

from pipelines.ingest.pipeline import create_import_pipeline as create_pipeline

__all__ = ["create_pipeline"]
