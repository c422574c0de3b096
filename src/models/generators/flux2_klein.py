"""Adapter to diffusers' ``Flux2KleinInpaintPipeline`` (FLUX.2 [klein], Black Forest Labs, 2026).

Checkpoint: ``black-forest-labs/FLUX.2-klein-4B`` (a 4B FLUX.2 transformer over a Qwen3-4B text
encoder read at hidden layers 9, 18 and 27, and FLUX.2's 32-channel VAE whose latents are
patchified 2x2 and batch-normalised), bfloat16 on GPU, up to 1 megapixel; Apache-2.0. The 4B
[klein] is step- and guidance-distilled (``is_distilled: true`` in its ``model_index.json``): the
model card runs 4 steps at guidance 1.0, and the pipeline ignores ``guidance_scale``. The
undistilled ``FLUX.2-klein-base-4B`` / ``-base-9B`` (the pipeline docstring's example: 50 steps,
guidance 4.0) take real classifier-free guidance against the empty prompt, which the pipeline
encodes itself: there is no negative-prompt argument.

No dedicated inpainting weights: the pipeline feeds the input image's latents as reference tokens
beside the noisy ones (as [klein] edits), re-noises the masked latents and blends the known ones
back at every step; ``InpaintGenerator`` pastes the original pixels back outside the mask. The
pipeline runs at the input image's own size floored to a multiple of 16 (its ``height`` /
``width`` arguments are overridden) and shrinks inputs above 1024 x 1024 pixels; the run size
given here is already a multiple of 16, and the output is resized back either way.
"""

from __future__ import annotations

from typing import Any

from .diffusion import register_diffusers_entry
from .flux import FluxFillGenerator


class Flux2KleinInpaintGenerator(FluxFillGenerator):
    """FLUX.2 [klein] inpainting (``Flux2KleinInpaintPipeline``). Shares FLUX.1 Fill's adapter
    (2x2-patchified latents, ``max_sequence_length``, no negative prompt).

    Args:
        max_sequence_length: Qwen3 tokens per prompt (the pipeline's default 512; the chat
            template takes about 30 of them).
        other arguments: see ``DiffusersInpaintGenerator``. ``guidance_scale`` > 1 is
            classifier-free guidance against the empty prompt and only exists for the undistilled
            [klein] base checkpoints. ``negative_prompt`` must stay None.

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; a negative prompt is given; on loading
            (``load``), guidance_scale > 1 for a distilled checkpoint (the pipeline would silently
            ignore it).
    """

    pipeline_class = "Flux2KleinInpaintPipeline"
    name = "flux2-klein-inpaint"

    def load(self) -> Any:
        pipe = super().load()
        if self.guidance_scale > 1 and pipe.config.is_distilled:
            raise ValueError(f"{self.name}: {self.model} is guidance-distilled (is_distilled in its model_index.json), "
                             f"so guidance_scale {self.guidance_scale} would be ignored; use guidance_scale <= 1 "
                             "or an undistilled FLUX.2 [klein] base checkpoint")
        return pipe


build_flux2_klein_inpaint = register_diffusers_entry(
    "flux2-klein-inpaint", Flux2KleinInpaintGenerator,
    description="FLUX.2 [klein] inpainting (Flux2KleinInpaintPipeline)", pipeline="Flux2KleinInpaintPipeline",
    exclude=("negative_prompt",), steps=4, guidance_scale=1.0, resolution=1024, max_batch=2,
)
