"""Filter stage: no-reference quality gates (BRISQUE <= 60 by default)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
