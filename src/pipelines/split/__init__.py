"""Split stage: leakage-free split protocols by real image group (random 8:2 / 8:1:1,
leave-generators-out, train-on-one-generator, published), with authentic negatives."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
