"""Inpaint stage: multi-turn edits by a registry of generators, with pixel label maps."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
