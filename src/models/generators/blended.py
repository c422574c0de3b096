"""Inpainting with a text-to-image model that has no inpainting pipeline in diffusers 0.42:
HunyuanDiT 1.1 (``HunyuanDiTPipeline``) and Kolors (``KolorsPipeline``).

Method: blended latent diffusion (Avrahami et al., 2023; the same latent blend diffusers'
Stable Diffusion inpainting pipeline applies to 4-channel UNets). The known image is encoded
once; the run starts from noise inside the mask and from the noised image outside it, and after
every denoising step ``callback_on_step_end`` puts the image back outside the (latent) mask,
noised to the next step's level. The text-to-image pipeline itself, its scheduler and its text
encoders run unchanged; only latents are replaced between steps. This is NOT the dedicated
inpainting models DiffSeg30k may have used (Kolors-Inpainting ships its own non-diffusers
pipeline; no HunyuanDiT inpainting weights are public): the README says so.

Kolors needs the ``sentencepiece`` package for its ChatGLM tokenizer; without it the entry
raises ``GeneratorNotSupportedError`` when built.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from PIL import Image

from .base import GeneratorNotSupportedError
from .diffusion import DiffusersInpaintGenerator, batched, register_diffusers_entry


class BlendedLatentInpaintGenerator(DiffusersInpaintGenerator):
    """A text-to-image diffusers pipeline turned into an inpainter by latent blending.

    Subclasses set ``pipeline_class`` (a pipeline whose ``__call__`` takes ``latents``,
    ``callback_on_step_end`` and whose callbacks may return ``latents``) and may add call
    kwargs in ``call_kwargs``. ``strength`` is not used (the masked region starts from noise).
    """

    def call_kwargs(self) -> dict[str, Any]:
        return {}

    def _encode(self, pipe: Any, image: np.ndarray, height: int, width: int, count: int) -> Any:
        import torch

        pixels = pipe.image_processor.preprocess(Image.fromarray(image), height=height, width=width)
        vae = pipe.vae
        pixels = pixels.to(device=vae.device, dtype=vae.dtype)
        latents = vae.encode(pixels).latent_dist.mode()  # the mode: the known image, not a sample of it
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        latents = (latents - shift) * vae.config.scaling_factor
        return latents.to(torch.float32).repeat(count, 1, 1, 1)

    def _call(self, pipe, image, mask, prompt, generators, height, width):
        import torch
        import torch.nn.functional as F
        from diffusers.utils.torch_utils import randn_tensor

        count = len(generators)
        device = pipe.vae.device
        known = self._encode(pipe, image, height, width, count).to(device)
        # Any latent cell touching the region is generated: the pixel mask pasted afterwards
        # must never expose a cell that was held to the original.
        latent_mask = F.adaptive_max_pool2d(torch.from_numpy(mask.astype(np.float32))[None, None], known.shape[-2:])
        latent_mask = latent_mask.to(device)
        noise = randn_tensor(known.shape, generator=generators, device=device, dtype=known.dtype)
        scheduler = pipe.scheduler
        scheduler.set_timesteps(self.steps, device=device)
        first = scheduler.timesteps[:1].repeat(count)
        start = scheduler.add_noise(known, noise, first) / scheduler.init_noise_sigma
        latents = latent_mask * noise + (1 - latent_mask) * start

        def blend(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            current = tensors["latents"]
            timesteps = pipeline.scheduler.timesteps
            if step + 1 < len(timesteps):
                level = scheduler_level(pipeline.scheduler, known, noise, timesteps[step + 1 : step + 2].repeat(count))
            else:
                level = known
            mixed = latent_mask * current.float() + (1 - latent_mask) * level
            return {"latents": mixed.to(current.dtype)}

        output = pipe(
            prompt=batched(prompt, count),
            height=height,
            width=width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            negative_prompt=None if self.negative_prompt is None else batched(self.negative_prompt, count),
            generator=generators,
            latents=latents.to(pipe.vae.dtype),
            callback_on_step_end=blend,
            callback_on_step_end_tensor_inputs=["latents"],
            output_type="np",
            **self.call_kwargs(),
        )
        return list(output.images)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "method": "blended latent diffusion on a text-to-image pipeline"}


def scheduler_level(scheduler: Any, known: Any, noise: Any, timesteps: Any) -> Any:
    """``known`` noised to ``timesteps`` by the scheduler's own forward process."""
    return scheduler.add_noise(known, noise, timesteps)


class HunyuanDiTBlendedInpaintGenerator(BlendedLatentInpaintGenerator):
    """HunyuanDiT (v1.1: ``Tencent-Hunyuan/HunyuanDiT-v1.1-Diffusers``, 1024 px) inpainting by
    blended latent diffusion on ``HunyuanDiTPipeline``; see the module docstring."""

    pipeline_class = "HunyuanDiTPipeline"
    name = "hunyuandit-blend"

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {**super().from_pretrained_kwargs(), "safety_checker": None, "requires_safety_checker": False}

    def run_multiple(self, pipe: Any) -> int:
        return max(16, pipe.vae_scale_factor * int(pipe.transformer.config.patch_size))

    def call_kwargs(self) -> dict[str, Any]:
        # Binning would silently change the run size to one of HunyuanDiT's trained shapes.
        return {"use_resolution_binning": False}


class KolorsBlendedInpaintGenerator(BlendedLatentInpaintGenerator):
    """Kolors (``Kwai-Kolors/Kolors-diffusers``, 1024 px) inpainting by blended latent diffusion
    on ``KolorsPipeline``; see the module docstring.

    Raises:
        GeneratorNotSupportedError: the ``sentencepiece`` package (Kolors' ChatGLM tokenizer) is
            not installed.
    """

    pipeline_class = "KolorsPipeline"
    name = "kolors-blend"

    def __init__(self, model: str, **kwargs: Any):
        if importlib.util.find_spec("sentencepiece") is None:
            raise GeneratorNotSupportedError(
                "kolors-blend: Kolors' ChatGLM tokenizer needs the `sentencepiece` package, which is not installed "
                "(add sentencepiece to requirements.in). diffusers 0.42 has no Kolors inpainting pipeline either: "
                "this entry inpaints with the text-to-image KolorsPipeline by latent blending."
            )
        super().__init__(model, **kwargs)


build_hunyuandit_blend = register_diffusers_entry(
    "hunyuandit-blend", HunyuanDiTBlendedInpaintGenerator,
    description="HunyuanDiT text-to-image + blended latent inpainting (diffusers has no HunyuanDiT inpainting pipeline)",
    pipeline="HunyuanDiTPipeline", exclude=('strength',), steps=50, guidance_scale=6.0, resolution=1024,
)


build_kolors_blend = register_diffusers_entry(
    "kolors-blend", KolorsBlendedInpaintGenerator,
    description="Kolors text-to-image + blended latent inpainting (needs sentencepiece)",
    pipeline="KolorsPipeline",
    supported=True if importlib.util.find_spec("sentencepiece") else "needs sentencepiece", exclude=('strength',),
    steps=50, guidance_scale=5.0, resolution=1024,
)
