"""Adapter to diffusers' ``QwenImageInpaintPipeline`` (Qwen-Image, Alibaba Qwen team, 2025).

Checkpoint: ``Qwen/Qwen-Image`` (a 20B MMDiT over a Qwen2.5-VL-7B text encoder and a Wan-style
16-channel VAE), bfloat16 on GPU, about 1 megapixel. Qwen-Image has no dedicated inpainting
weights: the pipeline inpaints with the base model, re-noising the masked latents and blending
the known ones back at every step (as SD3's); the original is pasted back outside the mask by
``InpaintGenerator``. Guidance is real classifier-free guidance, named ``true_cfg_scale`` by the
pipeline and active only with a negative prompt (the model card uses " " and 4.0).
"""

from __future__ import annotations

from typing import Any

from .diffusion import DiffusersInpaintGenerator, register_diffusers_entry


class QwenImageInpaintGenerator(DiffusersInpaintGenerator):
    """Qwen-Image inpainting (``QwenImageInpaintPipeline``).

    Args:
        max_sequence_length: text tokens per prompt (the pipeline's default 512).
        other arguments: see ``DiffusersInpaintGenerator``; ``guidance_scale`` is passed as
            ``true_cfg_scale`` and needs ``negative_prompt`` (default " ") to take effect.

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; guidance_scale > 1 without a negative prompt
            (the pipeline would silently run without guidance).
    """

    pipeline_class = "QwenImageInpaintPipeline"
    name = "qwen-image-inpaint"

    def __init__(self, model: str, max_sequence_length: int = 512, **kwargs: Any):
        super().__init__(model, **kwargs)
        if self.guidance_scale > 1 and self.negative_prompt is None:
            raise ValueError(f"{self.name} applies guidance_scale > 1 (true CFG) only with a negative prompt; "
                             "pass negative_prompt (Qwen-Image's model card uses ' ') or guidance_scale <= 1")
        self.max_sequence_length = int(max_sequence_length)

    def run_multiple(self, pipe: Any) -> int:
        # Latents are packed in 2x2 patches: sides must divide by vae_scale_factor * 2.
        return max(16, pipe.vae_scale_factor * 2)

    def guidance_kwargs(self) -> dict[str, Any]:
        return {"true_cfg_scale": self.guidance_scale}

    def extra_call_kwargs(self) -> dict[str, Any]:
        return {"max_sequence_length": self.max_sequence_length}


build_qwen_image_inpaint = register_diffusers_entry(
    "qwen-image-inpaint", QwenImageInpaintGenerator, description="Qwen-Image inpainting (QwenImageInpaintPipeline)",
    pipeline="QwenImageInpaintPipeline", steps=50, guidance_scale=4.0, negative_prompt=" ", resolution=1024,
    max_batch=2,
)
