"""Perceive stage: editable regions (things, stuff, background), 1-3 per sample, with prompts."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
