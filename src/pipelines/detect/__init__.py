"""Detect stage: a trained detector applied to one's own photos (a folder, an S3 prefix or a file)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
