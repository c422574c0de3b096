"""Stats stage: dataset statistics (DiffSeg30k Fig. 3) and per-split counts, figures and a page."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
