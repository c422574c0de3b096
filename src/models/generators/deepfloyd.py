"""GLIDE's slot in DiffSeg30k, and the closest diffusers-supported model: DeepFloyd IF inpainting.

GLIDE (Nichol et al., 2021) has no diffusers pipeline and no diffusers-format weights (OpenAI's
``glide-text2im`` repository ships its own code); the ``glide`` entry raises
``GeneratorNotSupportedError`` saying so. DiffSeg30k ran GLIDE at 256 px. DeepFloyd IF is the
nearest architecture diffusers supports: like GLIDE it is a pixel-space, text-conditioned
cascaded diffusion model with a 64 px base stage and a 256 px super-resolution stage, both of
which inpaint (``IFInpaintingPipeline`` then ``IFInpaintingSuperResolutionPipeline``). The
``if-inpaint`` entry runs those two stages and returns the 256 px result (resized back to the
image); IF stage III (x4 to 1024) is not used, as GLIDE stopped at 256.

Checkpoints: ``DeepFloyd/IF-I-XL-v1.0`` (or ``-I-M-``/``-I-L-``) and ``DeepFloyd/IF-II-L-v1.0``
(``-II-M-``); both need the licence accepted on the hub and then sit in the local cache.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .base import GENERATORS, GeneratorNotSupportedError
from .diffusion import DiffusersInpaintGenerator, batched, load_pipeline, mask_image, register_diffusers_entry


class DeepFloydIFInpaintGenerator(DiffusersInpaintGenerator):
    """DeepFloyd IF inpainting, stage I (64 px) then stage II (256 px).

    Args:
        model: the stage I checkpoint.
        sr_model: the stage II (super-resolution) checkpoint; loaded without its own T5: the
            prompt is encoded once by stage I.
        steps, guidance_scale: stage I's; sr_steps, sr_guidance_scale: stage II's.
        noise_level: noise added to the upscaled stage I output before stage II (IF's 250).
        other arguments: see ``DiffusersInpaintGenerator``. The run size is fixed by the
            checkpoints (short side = stage II's sample size, 256), so ``resolution`` is unused.
    """

    pipeline_class = "IFInpaintingPipeline"
    sr_pipeline_class = "IFInpaintingSuperResolutionPipeline"
    name = "if-inpaint"

    def __init__(self, model: str, sr_model: str, sr_steps: int = 50, sr_guidance_scale: float = 4.0,
                 noise_level: int = 250, **kwargs: Any):
        super().__init__(model, **kwargs)
        if int(sr_steps) < 1:
            raise ValueError(f"sr_steps must be >= 1, got {sr_steps}")
        if not 0 <= int(noise_level) < 1000:
            raise ValueError(f"noise_level must be in [0, 1000), got {noise_level}")
        self.sr_model = str(sr_model)
        self.sr_steps = int(sr_steps)
        self.sr_guidance_scale = float(sr_guidance_scale)
        self.noise_level = int(noise_level)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {**super().from_pretrained_kwargs(), "safety_checker": None, "feature_extractor": None,
                "watermarker": None, "requires_safety_checker": False}

    def load_sr(self) -> Any:
        """The (cached) stage II pipeline, without a text encoder."""
        return load_pipeline(self.sr_pipeline_class, self.sr_model, self.device, self.dtype, text_encoder=None,
                             **self.from_pretrained_kwargs())

    def _run_size(self, height: int, width: int, multiple: int) -> tuple[int, int]:
        # IF resizes the short side to the stage's sample size (long side to a multiple of 8);
        # running at exactly that size makes stage II's output map 1:1 onto the run image.
        size = int(self.load_sr().unet.config.sample_size)
        if height <= width:
            return size, int(round(size / 8 * width / height)) * 8
        return int(round(size / 8 * height / width)) * 8, size

    def _call(self, pipe, image, mask, prompt, generators, height, width):
        count = len(generators)
        sr = self.load_sr()
        prompt_embeds, negative_embeds = pipe.encode_prompt(
            batched(prompt, count), do_classifier_free_guidance=self.guidance_scale > 1 or self.sr_guidance_scale > 1,
            device=pipe._execution_device,
            negative_prompt=None if self.negative_prompt is None else batched(self.negative_prompt, count),
        )
        original = batched(Image.fromarray(image), count)
        masks = batched(mask_image(mask), count)
        low = pipe(
            image=original, mask_image=masks, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
            strength=self.strength, num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
            generator=generators, output_type="pt",
        ).images
        output = sr(
            image=low, original_image=original, mask_image=masks, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_embeds, strength=self.strength, num_inference_steps=self.sr_steps,
            guidance_scale=self.sr_guidance_scale, noise_level=self.noise_level, generator=generators, output_type="np",
        )
        return list(output.images)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sr_model": self.sr_model, "sr_steps": self.sr_steps,
                "stands_in_for": "glide"}


build_if_inpaint = register_diffusers_entry(
    "if-inpaint", DeepFloydIFInpaintGenerator,
    description="DeepFloyd IF inpainting 64 -> 256 px (IFInpaintingPipeline + IFInpaintingSuperResolutionPipeline); the closest diffusers model to GLIDE",
    pipeline="IFInpaintingPipeline", exclude=('resolution', 'strength'), steps=50, guidance_scale=7.0,
)


GLIDE_NOT_SUPPORTED = (
    "glide: `glide` is a class name, not a registry entry. GLIDE itself runs as `generator: glide-inpaint` "
    "(OpenAI's base_inpaint.pt + upsample_inpaint.pt, our own code, local files); without those files the "
    "closest diffusers model is DeepFloyd IF inpainting at 256 px: `generator: if-inpaint` (conf/gpu uses it)."
)


@GENERATORS.register("glide", description="a class name, not an entry: use glide-inpaint (or if-inpaint)",
                     pipeline="", supported=False, reason=GLIDE_NOT_SUPPORTED)
def build_glide(**_: Any) -> DeepFloydIFInpaintGenerator:
    """Always raises ``GeneratorNotSupportedError`` (see ``GLIDE_NOT_SUPPORTED``)."""
    raise GeneratorNotSupportedError(GLIDE_NOT_SUPPORTED)
