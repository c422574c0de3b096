"""Evaluate stage: the seeds' protocols (in-domain, breakdowns, robustness, cross-generator,
LoRA-as-parent), their pixel and image metrics under both conventions, and the HTML report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
