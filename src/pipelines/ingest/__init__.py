"""Ingest stage: real photos (scikit-image samples, COCO, class folders, URL lists) -> square base
images; and `import`: published datasets (IMDL-BenCo, BR-Gen, OpenSDID, DiffSeg30k) -> samples."""

from .pipeline import create_import_pipeline, create_pipeline

__all__ = ["create_import_pipeline", "create_pipeline"]
