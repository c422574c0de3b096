"""Adapter to diffusers' Kandinsky 2.2 inpainting: ``KandinskyV22PriorPipeline`` (text -> CLIP image
embedding) then ``KandinskyV22InpaintPipeline`` (the MoVQ-latent decoder, 9-channel UNet).

Checkpoints: ``kandinsky-community/kandinsky-2-2-prior`` and
``kandinsky-community/kandinsky-2-2-decoder-inpaint``, at 768 px (512 works; sides are
multiples of 64). The two are separate repositories, so the adapter names both explicitly
instead of relying on the combined pipeline's model-card lookup (which needs the hub).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .diffusion import DiffusersInpaintGenerator, batched, load_pipeline, mask_image, register_diffusers_entry


class Kandinsky22InpaintGenerator(DiffusersInpaintGenerator):
    """Kandinsky 2.2 inpainting: prior + inpainting decoder.

    Args:
        model: the decoder-inpaint checkpoint.
        prior_model: the prior checkpoint.
        prior_steps, prior_guidance_scale: the prior's denoising steps and guidance.
        other arguments: see ``DiffusersInpaintGenerator`` (``steps`` / ``guidance_scale`` are the
            decoder's; ``strength`` is not used: the decoder always starts from noise).
    """

    pipeline_class = "KandinskyV22InpaintPipeline"
    prior_pipeline_class = "KandinskyV22PriorPipeline"
    name = "kandinsky22-inpaint"

    def __init__(self, model: str, prior_model: str, prior_steps: int = 25, prior_guidance_scale: float = 4.0,
                 **kwargs: Any):
        super().__init__(model, **kwargs)
        if int(prior_steps) < 1:
            raise ValueError(f"prior_steps must be >= 1, got {prior_steps}")
        self.prior_model = str(prior_model)
        self.prior_steps = int(prior_steps)
        self.prior_guidance_scale = float(prior_guidance_scale)

    def load_prior(self) -> Any:
        """The (cached) prior pipeline."""
        return load_pipeline(self.prior_pipeline_class, self.prior_model, self.device, self.dtype,
                             **self.from_pretrained_kwargs())

    def run_multiple(self, pipe: Any) -> int:
        # The decoder rounds the latent size up to a multiple of movq_scale_factor ** 2 pixels.
        return max(8, pipe.movq_scale_factor ** 2)

    def _call(self, pipe, image, mask, prompt, generators, height, width):
        count = len(generators)
        prior = self.load_prior()
        embeds = prior(
            prompt=batched(prompt, count),
            negative_prompt=None if self.negative_prompt is None else batched(self.negative_prompt, count),
            num_inference_steps=self.prior_steps,
            guidance_scale=self.prior_guidance_scale,
            generator=generators,
            output_type="pt",
        )
        output = pipe(
            image_embeds=embeds.image_embeds,
            negative_image_embeds=embeds.negative_image_embeds,
            image=batched(Image.fromarray(image), count),
            mask_image=batched(mask_image(mask), count),  # white = repaint (diffusers >= 0.19)
            height=height,
            width=width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=generators,
            output_type="np",
        )
        return list(output.images)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "prior_model": self.prior_model, "prior_steps": self.prior_steps}


build_kandinsky22_inpaint = register_diffusers_entry(
    "kandinsky22-inpaint", Kandinsky22InpaintGenerator,
    description="Kandinsky 2.2 inpainting (KandinskyV22PriorPipeline + KandinskyV22InpaintPipeline)",
    pipeline="KandinskyV22InpaintPipeline", exclude=('strength',), steps=50, guidance_scale=4.0, resolution=768,
)
