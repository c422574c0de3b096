"""Ingest stage: real photos (scikit-image samples, COCO, class folders) -> square base images."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
