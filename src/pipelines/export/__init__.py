"""Export stage: the dataset in published formats (IMDL-BenCo, BR-Gen, DiffSeg30k, HF parquet)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
