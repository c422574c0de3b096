"""Adapter to diffusers' ``FluxFillPipeline`` (FLUX.1 Fill, Black Forest Labs' inpainting model).

Checkpoint: ``black-forest-labs/FLUX.1-Fill-dev`` at 1024 px, bfloat16 on GPU. The Fill
transformer takes the masked image and the mask as extra input channels (384 = 64 + 64 + 256),
so it sees the whole picture; like every latent model it re-encodes all pixels, and the
original is pasted back outside the mask. FLUX.1 Fill uses guidance distillation: its
``guidance_scale`` (30 by default) is an input of the model, not classifier-free guidance, and
it takes no negative prompt.
"""

from __future__ import annotations

from typing import Any


from .diffusion import DiffusersInpaintGenerator, register_diffusers_entry


class FluxFillGenerator(DiffusersInpaintGenerator):
    """FLUX.1 Fill (``FluxFillPipeline``).

    Args:
        max_sequence_length: T5 tokens per prompt (512 for FLUX.1-dev).
        other arguments: see ``DiffusersInpaintGenerator`` (``negative_prompt`` must stay None).
    """

    pipeline_class = "FluxFillPipeline"
    name = "flux-fill"

    def __init__(self, model: str, max_sequence_length: int = 512, **kwargs: Any):
        super().__init__(model, **kwargs)
        if self.negative_prompt is not None:
            raise ValueError(f"{self.name}: FLUX models take no negative prompt (guidance is distilled, or for "
                             "FLUX.2 [klein] base runs against the empty prompt)")
        self.max_sequence_length = int(max_sequence_length)

    def run_multiple(self, pipe: Any) -> int:
        # Latents are packed in 2x2 patches: sides must divide by vae_scale_factor * 2.
        return max(16, pipe.vae_scale_factor * 2)

    def extra_call_kwargs(self) -> dict[str, Any]:
        return {"max_sequence_length": self.max_sequence_length}


build_flux_fill = register_diffusers_entry(
    "flux-fill", FluxFillGenerator, description="FLUX.1 Fill (FluxFillPipeline)", pipeline="FluxFillPipeline",
    exclude=('negative_prompt',), steps=50, guidance_scale=30.0, resolution=1024, max_batch=2,
)


class FluxInpaintGenerator(FluxFillGenerator):
    """FLUX.1 [dev] inpainting with the base text-to-image model (``FluxInpaintPipeline``).

    Checkpoint: ``black-forest-labs/FLUX.1-dev`` (the transformer has no mask channels; the
    pipeline re-noises the masked latents and blends the known ones back at every step, as SD3's).
    Arguments as ``FluxFillGenerator``; ``guidance_scale`` is the distilled guidance (3.5 on the card).
    """

    pipeline_class = "FluxInpaintPipeline"
    name = "flux-inpaint"


build_flux_inpaint = register_diffusers_entry(
    "flux-inpaint", FluxInpaintGenerator, description="FLUX.1 [dev] base-model inpainting (FluxInpaintPipeline)",
    pipeline="FluxInpaintPipeline", exclude=('negative_prompt',), steps=28, guidance_scale=3.5, resolution=1024,
    max_batch=2,
)
