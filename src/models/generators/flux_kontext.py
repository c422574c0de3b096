"""Adapter to diffusers' ``FluxKontextInpaintPipeline`` (FLUX.1 Kontext, Black Forest Labs, 2025).

Checkpoint: ``black-forest-labs/FLUX.1-Kontext-dev`` (12B, bfloat16 on GPU). Kontext is an
in-context editor: the transformer sees the input image's latents as extra tokens beside the
noisy ones, and the prompt is an instruction ("add a red balloon to the sky"). The inpainting
pipeline adds a mask: outside it the known latents are blended back at every step, and
``InpaintGenerator`` pastes the original pixels back. Guidance is distilled (``guidance_scale``
is a model input, 2.5 on the model card; no negative prompt).

Kontext was trained on a list of about-1-megapixel sizes; the pipeline snaps the input to the
nearest of them when ``auto_resize`` is on. Off by default: the run size is the adapter's own
(``resolution``, rounded to 16), which at 1024 is already such a size for the common aspect ratios.
"""

from __future__ import annotations

from typing import Any

from .diffusion import register_diffusers_entry
from .flux import FluxFillGenerator


class FluxKontextInpaintGenerator(FluxFillGenerator):
    """FLUX.1 Kontext inpainting (``FluxKontextInpaintPipeline``).

    Args:
        auto_resize: let the pipeline snap the run size to Kontext's trained resolutions.
        other arguments: see ``FluxFillGenerator`` (``negative_prompt`` must stay None).

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; a negative prompt is given.
    """

    pipeline_class = "FluxKontextInpaintPipeline"
    name = "flux-kontext-inpaint"

    def __init__(self, model: str, auto_resize: bool = False, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.auto_resize = bool(auto_resize)

    def extra_call_kwargs(self) -> dict[str, Any]:
        return {**super().extra_call_kwargs(), "_auto_resize": self.auto_resize}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "auto_resize": self.auto_resize}


build_flux_kontext_inpaint = register_diffusers_entry(
    "flux-kontext-inpaint", FluxKontextInpaintGenerator,
    description="FLUX.1 Kontext inpainting (FluxKontextInpaintPipeline)", pipeline="FluxKontextInpaintPipeline",
    exclude=("negative_prompt",), steps=28, guidance_scale=2.5, resolution=1024, max_batch=2,
)
