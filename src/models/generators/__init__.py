"""Generators: inpainters (one registry, one factory, one interface) and text-to-image models.

>>> gen = create_generator("telea", radius=5)
>>> edited = gen.inpaint(image, mask, prompt="", seed=0)   # (H, W, 3) uint8, untouched outside mask
>>> t2i = create_text_to_image("sd-txt2img", model="stable-diffusion-v1-5/stable-diffusion-v1-5")

The inpainting zoo (``list_generators()``; ``generator_table()`` says which are supported):
OpenCV (telea, navier_stokes), diffusers families (sd-inpaint, sdxl-inpaint, sdxl-inpaint-lora,
sd3-inpaint, flux-fill, flux-inpaint, flux-kontext-inpaint, flux2-klein-inpaint, qwen-image-inpaint,
qwen-image-edit-inpaint, z-image-inpaint, chroma-inpaint, amused-inpaint (masked VQ tokens), kandinsky22-inpaint, if-inpaint, hunyuandit-blend, kolors-blend, tiny-sd),
TorchScript GANs (lama, mat), BR-Gen's BrushNet and PowerPaint v2 (brushnet, brushnet-sdxl,
powerpaint; our own BrushNet branch on diffusers' SD 1.5 / SDXL UNet), GLIDE from OpenAI's checkpoints
(glide-inpaint; our own torch code), classic forgeries (copy_move, splicing), and the registered but
unsupported glide that raises ``GeneratorNotSupportedError``.

Importing this package registers every generator; torch/diffusers load only when a diffusion
generator is first used.
"""

from __future__ import annotations

from typing import Any

# Importing the modules registers their entries.
from . import blended, brushnet, classic, deepfloyd, diffusion, flux, kandinsky, opencv, sd3, sdxl, tiny, torchscript  # noqa: F401
from . import amused, chroma, flux2_klein, flux_kontext, qwen_image, qwen_image_edit, z_image  # noqa: F401  (issue #15 item 8)
from . import glide  # noqa: F401  (GLIDE from OpenAI's checkpoints, issue #15 item 5)
from .base import (
    GENERATORS,
    EditSession,
    EditSpec,
    GeneratorNotSupportedError,
    InpaintGenerator,
    apply_edits,
    candidate_seeds,
)
from .candidates import ClipCandidateScorer, build_clip_candidate_scorer
from .classic import CopyMoveGenerator, SplicingGenerator
from .diffusion import (
    DiffusersInpaintGenerator,
    StableDiffusionInpaintGenerator,
    cached_pipelines,
    clear_pipeline_cache,
    load_inpaint_pipeline,
    load_pipeline,
    set_max_loaded,
    set_max_resident,
)
from .brushnet import BrushNetInpaintGenerator, BrushNetInpaintPipeline, BrushNetXLInpaintGenerator, PowerPaintInpaintGenerator
from .opencv import OpenCVInpaintGenerator
from .text_to_image import TEXT_TO_IMAGE, TextToImageGenerator, create_text_to_image, list_text_to_image
from .tiny import build_offline_clip_tokenizer, build_tiny_sd_inpaint
from .torchscript import TorchScriptInpaintGenerator


def create_generator(name: str, **kwargs) -> InpaintGenerator:
    """Build the registered generator ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
        GeneratorNotSupportedError: the entry is registered but cannot run here (the message says why).
    """
    return GENERATORS.create(name, **kwargs)


def list_generators() -> list[str]:
    """Sorted names of all registered generators (supported or not; see ``generator_table``)."""
    return GENERATORS.names()


def generator_table() -> list[dict[str, Any]]:
    """One row per registered inpainter: name, pipeline (diffusers class, "torch.jit" or ""),
    supported (True, False, or a string naming what is missing) and description / reason."""
    rows = []
    for name in GENERATORS.names():
        meta = GENERATORS.meta(name)
        rows.append({"name": name, "pipeline": meta.get("pipeline", ""), "supported": meta.get("supported", True),
                     "description": meta.get("description", ""), "reason": meta.get("reason", "")})
    return rows


__all__ = [
    "GENERATORS",
    "TEXT_TO_IMAGE",
    "BrushNetInpaintGenerator",
    "BrushNetInpaintPipeline",
    "BrushNetXLInpaintGenerator",
    "ClipCandidateScorer",
    "CopyMoveGenerator",
    "DiffusersInpaintGenerator",
    "EditSession",
    "EditSpec",
    "GeneratorNotSupportedError",
    "InpaintGenerator",
    "OpenCVInpaintGenerator",
    "PowerPaintInpaintGenerator",
    "SplicingGenerator",
    "StableDiffusionInpaintGenerator",
    "TextToImageGenerator",
    "TorchScriptInpaintGenerator",
    "apply_edits",
    "build_clip_candidate_scorer",
    "build_offline_clip_tokenizer",
    "build_tiny_sd_inpaint",
    "cached_pipelines",
    "candidate_seeds",
    "clear_pipeline_cache",
    "create_generator",
    "create_text_to_image",
    "generator_table",
    "list_generators",
    "list_text_to_image",
    "load_inpaint_pipeline",
    "load_pipeline",
    "set_max_loaded",
    "set_max_resident",
]
