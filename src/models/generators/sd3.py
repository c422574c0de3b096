"""Adapter to diffusers' ``StableDiffusion3InpaintPipeline`` (SD3 / SD3.5).

Checkpoints: ``stabilityai/stable-diffusion-3-medium-diffusers`` (OpenSDI's SD3),
``stabilityai/stable-diffusion-3.5-large`` / ``-3.5-medium`` (DiffSeg30k's SD3.5), at 1024 px.
Stability released no dedicated SD3 inpainting weights: the pipeline inpaints with the base
model (its 16-channel transformer), re-noising the masked latents and blending the known ones
back at every step. The T5 encoder is optional in SD3 (``drop_t5: true`` loads without it, as
Stability documents, saving ~9 GB).
"""

from __future__ import annotations

from typing import Any


from .diffusion import DiffusersInpaintGenerator, register_diffusers_entry


class StableDiffusion3InpaintGenerator(DiffusersInpaintGenerator):
    """SD3 / SD3.5 inpainting (``StableDiffusion3InpaintPipeline``).

    Args:
        max_sequence_length: T5 tokens per prompt (the pipeline's default 256).
        drop_t5: load without the T5 text encoder (``text_encoder_3=None``).
        other arguments: see ``DiffusersInpaintGenerator``.
    """

    pipeline_class = "StableDiffusion3InpaintPipeline"
    name = "sd3-inpaint"

    def __init__(self, model: str, max_sequence_length: int = 256, drop_t5: bool = False, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.max_sequence_length = int(max_sequence_length)
        self.drop_t5 = bool(drop_t5)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        extra = {"text_encoder_3": None, "tokenizer_3": None} if self.drop_t5 else {}
        return {**super().from_pretrained_kwargs(), **extra}

    def run_multiple(self, pipe: Any) -> int:
        # The transformer patchifies the latent: sides must divide by vae_scale_factor * patch_size.
        return max(16, pipe.vae_scale_factor * int(pipe.transformer.config.patch_size))

    def extra_call_kwargs(self) -> dict[str, Any]:
        return {"max_sequence_length": self.max_sequence_length}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "drop_t5": self.drop_t5}


build_sd3_inpaint = register_diffusers_entry(
    "sd3-inpaint", StableDiffusion3InpaintGenerator,
    description="SD3 / SD3.5 inpainting (StableDiffusion3InpaintPipeline)",
    pipeline="StableDiffusion3InpaintPipeline", steps=28, guidance_scale=7.0, resolution=1024,
)
