"""Adapter to diffusers' ``StableDiffusionInpaintPipeline`` (SD 1.x / 2.x inpainting checkpoints).

torch and diffusers are imported inside the functions that need them: importing the pipeline
class costs about 9 s on CPU, and most users of ``models.generators`` (label maps, provenance,
OpenCV edits) never touch a diffusion model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .base import GENERATORS, InpaintGenerator

_DTYPES = ("float32", "float16", "bfloat16")

# One pipeline per (model, device, dtype) per process: a real checkpoint takes seconds to load
# and gigabytes to hold, and every generator instance naming it must share the same weights.
_PIPELINES: dict[tuple[str, str, str], Any] = {}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true"}


def _cache_key(model: str, device: str, dtype: str) -> tuple[str, str, str]:
    # The same local folder named relatively and absolutely is one checkpoint.
    path = Path(model)
    return (str(path.resolve()) if path.is_dir() else model, device, dtype)


def load_inpaint_pipeline(model: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """Load (once per process) a ``StableDiffusionInpaintPipeline`` from a hub id or local folder.

    The safety checker is not loaded. Hub files are read from the local cache only when the
    environment variable ``HF_HUB_OFFLINE`` is "1" or "true".

    Raises:
        ValueError: ``dtype`` is not one of float32, float16, bfloat16.
        OSError: diffusers cannot find the checkpoint.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    key = _cache_key(model, device, dtype)
    if key not in _PIPELINES:
        import torch
        from diffusers import StableDiffusionInpaintPipeline

        pipe = StableDiffusionInpaintPipeline.from_pretrained(
            model,
            dtype=getattr(torch, dtype),
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=_offline(),
        )
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
    return _PIPELINES[key]


def clear_pipeline_cache() -> None:
    """Forget every loaded pipeline (frees their memory once no generator holds them)."""
    _PIPELINES.clear()


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


class StableDiffusionInpaintGenerator(InpaintGenerator):
    """A diffusers inpainting checkpoint as an ``InpaintGenerator``.

    Args:
        model: hub id (e.g. "stabilityai/stable-diffusion-2-inpainting") or local folder holding
            a ``model_index.json``.
        steps: denoising steps.
        guidance_scale: classifier-free guidance; <= 1 disables it.
        resolution: if set, the diffusion runs with the longer image side at ``resolution``
            pixels (aspect ratio kept; a square image runs at resolution x resolution) and the
            result is resized back; if None it runs at the image's own size. Either way both
            sides are rounded to a multiple of 8, which the pipeline requires.
        device: torch device string ("cpu", "cuda", "cuda:1", ...).
        dtype: "float32" (the default, and the only sensible one on CPU), "float16" or "bfloat16".
        negative_prompt: passed to the pipeline on every call.
        name: the registry name this instance reports.

    The pipeline is loaded on first use (or by ``load()``) and shared through the process cache.

    Raises:
        ValueError: steps < 1, guidance_scale < 0, resolution not a positive multiple of 8,
            unknown dtype.
    """

    def __init__(
        self,
        model: str,
        steps: int = 30,
        guidance_scale: float = 7.5,
        resolution: int | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        negative_prompt: str | None = None,
        name: str = "sd-inpaint",
    ):
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if resolution is not None and (int(resolution) <= 0 or int(resolution) % 8):
            raise ValueError(f"resolution must be a positive multiple of 8, got {resolution}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        self.name = name
        self.model = str(model)
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.resolution = None if resolution is None else int(resolution)
        self.device = device
        self.dtype = dtype
        self.negative_prompt = negative_prompt

    def load(self) -> Any:
        """Return the (cached) diffusers pipeline, loading it if needed."""
        return load_inpaint_pipeline(self.model, self.device, self.dtype)

    def run_size(self, height: int, width: int, vae_scale_factor: int = 8) -> tuple[int, int]:
        """(height, width) the diffusion runs at for an image of ``height`` x ``width``."""
        multiple = math.lcm(8, int(vae_scale_factor))
        if self.resolution is None:
            scale = 1.0
        else:
            scale = self.resolution / max(height, width)
        return _round_to(height * scale, multiple), _round_to(width * scale, multiple)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        import torch

        pipe = self.load()
        height, width = image.shape[:2]
        run_h, run_w = self.run_size(height, width, pipe.vae_scale_factor)
        resized = (run_h, run_w) != (height, width)
        run_image, run_mask = image, mask
        if resized:
            run_image = cv2.resize(image, (run_w, run_h), interpolation=_interpolation(height * width, run_h * run_w))
            # Any run pixel touching the region is repainted, so the full-size hard mask pasted
            # afterwards never exposes pixels the model left alone.
            coverage = cv2.resize(mask.astype(np.float32), (run_w, run_h), interpolation=cv2.INTER_AREA)
            run_mask = coverage > 0
        # A hard 0/255 mask: diffusers binarises it anyway, and a soft one would hide what changed.
        mask_image = Image.fromarray(run_mask.astype(np.uint8) * 255)  # 2-D uint8 -> mode "L"
        generator = torch.Generator(self.device).manual_seed(seed)
        with torch.inference_mode():
            output = pipe(
                prompt=prompt,
                image=Image.fromarray(run_image),
                mask_image=mask_image,
                height=run_h,
                width=run_w,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                negative_prompt=self.negative_prompt,
                generator=generator,
                output_type="np",
            )
        result = (np.clip(output.images[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if resized:
            result = cv2.resize(result, (width, height), interpolation=_interpolation(run_h * run_w, height * width))
        return result

    def __repr__(self) -> str:
        return (
            f"StableDiffusionInpaintGenerator(name={self.name!r}, model={self.model!r}, steps={self.steps}, "
            f"guidance_scale={self.guidance_scale}, resolution={self.resolution}, device={self.device!r}, "
            f"dtype={self.dtype!r})"
        )


def _interpolation(src_pixels: int, dst_pixels: int) -> int:
    # Area averaging avoids aliasing when shrinking; cubic is sharper when enlarging.
    return cv2.INTER_AREA if dst_pixels < src_pixels else cv2.INTER_CUBIC


@GENERATORS.register("sd-inpaint", description="diffusers StableDiffusionInpaintPipeline from a hub id or folder")
def build_sd_inpaint(
    model: str,
    steps: int = 30,
    guidance_scale: float = 7.5,
    resolution: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    negative_prompt: str | None = None,
) -> StableDiffusionInpaintGenerator:
    """A Stable Diffusion inpainting checkpoint (hub id or local folder); see ``StableDiffusionInpaintGenerator``."""
    return StableDiffusionInpaintGenerator(
        model,
        steps=steps,
        guidance_scale=guidance_scale,
        resolution=resolution,
        device=device,
        dtype=dtype,
        negative_prompt=negative_prompt,
    )
