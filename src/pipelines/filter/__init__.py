"""Filter stage: quality gates on the edited images (BRISQUE <= 60 by default; CLIP score,
perceptual distance to the base and the VLM 0-5 rating when configured) and a filter report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
