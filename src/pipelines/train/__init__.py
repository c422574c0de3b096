"""Train stage: segmentation detectors for the binary and semantic tasks."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
