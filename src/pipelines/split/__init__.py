"""Split stage: train/val(/test) by real image group, with authentic negatives."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
