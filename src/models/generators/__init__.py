"""Inpainting generators: one registry, one factory, one interface.

>>> gen = create_generator("telea", radius=5)
>>> edited = gen.inpaint(image, mask, prompt="", seed=0)   # (H, W, 3) uint8, untouched outside mask

Importing this package registers every generator; torch/diffusers load only when a diffusion
generator is first used.
"""

from __future__ import annotations

from . import diffusion, opencv, tiny  # noqa: F401  (importing registers the entries)
from .base import GENERATORS, EditSpec, InpaintGenerator, apply_edits
from .diffusion import StableDiffusionInpaintGenerator, clear_pipeline_cache, load_inpaint_pipeline
from .opencv import OpenCVInpaintGenerator
from .tiny import build_offline_clip_tokenizer, build_tiny_sd_inpaint


def create_generator(name: str, **kwargs) -> InpaintGenerator:
    """Build the registered generator ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    return GENERATORS.create(name, **kwargs)


def list_generators() -> list[str]:
    """Sorted names of all registered generators."""
    return GENERATORS.names()


__all__ = [
    "GENERATORS",
    "EditSpec",
    "InpaintGenerator",
    "OpenCVInpaintGenerator",
    "StableDiffusionInpaintGenerator",
    "apply_edits",
    "build_offline_clip_tokenizer",
    "build_tiny_sd_inpaint",
    "clear_pipeline_cache",
    "create_generator",
    "list_generators",
    "load_inpaint_pipeline",
]
