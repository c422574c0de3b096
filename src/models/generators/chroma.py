"""Adapter to diffusers' ``ChromaInpaintPipeline`` (Chroma, lodestones, 2025).

Checkpoint: ``lodestones/Chroma1-HD`` (an 8.9B transformer derived from FLUX.1-schnell, whose
per-block modulations come from a small "approximator" network instead of CLIP; a T5-XXL text
encoder; FLUX's 16-channel VAE), bfloat16 on GPU, 1024 px. Chroma was trained with real
classifier-free guidance (negative prompt, ``guidance_scale`` > 1). No dedicated inpainting
weights: the pipeline blends latents, ``InpaintGenerator`` pastes the original back.

diffusers 0.42.1's ``ChromaInpaintPipeline`` reads ``transformer.config.guidance_embeds``, a field
``ChromaTransformer2DModel`` does not have (Chroma has no distilled-guidance input), so every call
fails with an AttributeError. ``prepare`` records ``guidance_embeds=False`` in the loaded
transformer's config, which is what the pipeline means to find; remove it once diffusers fixes it.
"""

from __future__ import annotations

from typing import Any

from .diffusion import register_diffusers_entry
from .qwen_image import QwenImageInpaintGenerator


class ChromaInpaintGenerator(QwenImageInpaintGenerator):
    """Chroma inpainting (``ChromaInpaintPipeline``). Shares Qwen-Image's adapter (2x2-packed
    latents, a negative prompt required for guidance, ``max_sequence_length``); the pipeline names
    its guidance ``guidance_scale``.

    Args:
        max_sequence_length: T5 tokens per prompt (the pipeline's default 512).
        other arguments: see ``DiffusersInpaintGenerator``; guidance_scale > 1 is classifier-free
            guidance and needs ``negative_prompt`` (default "").

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; guidance_scale > 1 without a negative prompt.
    """

    pipeline_class = "ChromaInpaintPipeline"
    name = "chroma-inpaint"

    def guidance_kwargs(self) -> dict[str, Any]:
        return {"guidance_scale": self.guidance_scale}

    def prepare(self, pipe: Any) -> None:
        super().prepare(pipe)
        if not hasattr(pipe.transformer.config, "guidance_embeds"):
            pipe.transformer.register_to_config(guidance_embeds=False)


build_chroma_inpaint = register_diffusers_entry(
    "chroma-inpaint", ChromaInpaintGenerator, description="Chroma inpainting (ChromaInpaintPipeline)",
    pipeline="ChromaInpaintPipeline", steps=40, guidance_scale=3.0, negative_prompt="", resolution=1024,
    max_batch=2,
)
