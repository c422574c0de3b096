"""Evaluate stage: the seeds' pixel and image metrics, confusion matrices and overlays."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
