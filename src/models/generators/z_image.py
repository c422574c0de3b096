"""Adapter to diffusers' ``ZImageInpaintPipeline`` (Z-Image, Alibaba Tongyi-MAI, 2025).

Checkpoint: ``Tongyi-MAI/Z-Image-Turbo`` (a 6B single-stream DiT over a Qwen3-4B text encoder and
FLUX's 16-channel VAE), bfloat16 on GPU, about 1 megapixel. Turbo is distilled to 8 denoising
steps without classifier-free guidance (the model card: 9 scheduler steps, guidance 0). Z-Image has
no dedicated inpainting weights: the pipeline inpaints with the base model by latent blending, and
``InpaintGenerator`` pastes the original back outside the mask. Its rotary embeddings are
complex64: float16 is not supported (diffusers' own tests skip it).
"""

from __future__ import annotations

from typing import Any

from .diffusion import DiffusersInpaintGenerator, register_diffusers_entry


class ZImageInpaintGenerator(DiffusersInpaintGenerator):
    """Z-Image inpainting (``ZImageInpaintPipeline``).

    Args:
        max_sequence_length: text tokens per prompt (the pipeline's default 512).
        other arguments: see ``DiffusersInpaintGenerator`` (guidance_scale > 1 turns on
            classifier-free guidance, for the non-distilled Z-Image checkpoints).

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; dtype "float16".
    """

    pipeline_class = "ZImageInpaintPipeline"
    name = "z-image-inpaint"

    def __init__(self, model: str, max_sequence_length: int = 512, **kwargs: Any):
        super().__init__(model, **kwargs)
        if self.dtype == "float16":
            raise ValueError("Z-Image does not run in float16 (complex64 rotary embeddings); use bfloat16 or float32")
        self.max_sequence_length = int(max_sequence_length)

    def run_multiple(self, pipe: Any) -> int:
        # Latents are patchified 2x2: sides must divide by vae_scale_factor * 2.
        return max(16, pipe.vae_scale_factor * 2)

    def extra_call_kwargs(self) -> dict[str, Any]:
        return {"max_sequence_length": self.max_sequence_length}


build_z_image_inpaint = register_diffusers_entry(
    "z-image-inpaint", ZImageInpaintGenerator, description="Z-Image inpainting (ZImageInpaintPipeline)",
    pipeline="ZImageInpaintPipeline", steps=9, guidance_scale=0.0, resolution=1024, max_batch=2,
)
