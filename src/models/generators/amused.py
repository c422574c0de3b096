"""Adapter to diffusers' ``AmusedInpaintPipeline`` (aMUSEd, Patil et al. 2024, an open MUSE).

Checkpoint: ``amused/amused-512`` (a U-ViT over a VQ-GAN with an 8192-entry codebook and 1/16
downsampling, a CLIP-L/14 text encoder), float16 on GPU (``variant: fp16``) at 512
px. aMUSEd is not a diffusion model: the image is a 32 x 32 grid of discrete VQ tokens; inpainting
replaces the tokens under the mask by the mask token and the transformer predicts them back over
a few parallel decoding steps (12 steps and guidance 10: the pipeline's defaults, which its
docstring example runs on ``amused/amused-512``). Outside the mask the tokens are the
original's, and ``InpaintGenerator`` pastes the original pixels back there.

What this adapter does differently from the other diffusion entries, because of the pipeline:
- one call per seed: the pipeline takes a single ``torch.Generator`` (its scheduler samples
  tokens with ``torch.multinomial``), so several candidates run one after another;
- the mask is given at token resolution, a token masked wherever the region touches its 16 x 16
  patch, so no patch the region reaches is left as the original's reconstruction;
- run sides are multiples of ``vae_scale_factor ** 2`` (256 px for the real model): the pipeline
  resizes the mask to the token grid through a processor that floors sizes to multiples of
  ``vae_scale_factor``, which only keeps the grid intact at those sizes. A non-square image is run
  at the nearest such size (its aspect ratio approximated) and resized back.
diffusers marks the pipeline deprecated (no fixes after 0.33.1); it still ships and runs in 0.42.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from .diffusion import DiffusersInpaintGenerator, mask_image, register_diffusers_entry


def token_mask(mask: np.ndarray, patch: int) -> np.ndarray:
    """(H / patch, W / patch) bool: True for every ``patch`` x ``patch`` cell that ``mask`` ((H, W)
    bool, sides multiples of ``patch``) touches. Raises ValueError for other sides."""
    height, width = mask.shape
    if height % patch or width % patch:
        raise ValueError(f"mask sides {height} x {width} are not multiples of the {patch} px token patch")
    return mask.reshape(height // patch, patch, width // patch, patch).any(axis=(1, 3))


class AmusedInpaintGenerator(DiffusersInpaintGenerator):
    """aMUSEd masked-token inpainting (``AmusedInpaintPipeline``).

    Args: see ``DiffusersInpaintGenerator``; ``guidance_scale`` > 1 is classifier-free guidance
    (against ``negative_prompt``, or the empty prompt when None); ``strength`` < 1 runs only the
    last part of the token schedule.
    """

    pipeline_class = "AmusedInpaintPipeline"
    name = "amused-inpaint"

    def run_multiple(self, pipe: Any) -> int:
        factor = int(pipe.vae_scale_factor)
        token_stride = factor * (2 if pipe.transformer.config.downsample else 1)
        return math.lcm(factor * factor, token_stride)

    def _call(self, pipe: Any, image: np.ndarray, mask: np.ndarray, prompt: str, generators: list[Any],
              height: int, width: int) -> Sequence[np.ndarray]:
        tokens = token_mask(mask, int(pipe.vae_scale_factor))
        outputs = []
        for generator in generators:
            output = pipe(
                prompt=prompt, image=Image.fromarray(image), mask_image=mask_image(tokens), strength=self.strength,
                num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                negative_prompt=self.negative_prompt, generator=generator, output_type="np",
            )
            outputs.append(output.images[0])
        return outputs


build_amused_inpaint = register_diffusers_entry(
    "amused-inpaint", AmusedInpaintGenerator, description="aMUSEd masked-token inpainting (AmusedInpaintPipeline)",
    pipeline="AmusedInpaintPipeline", steps=12, guidance_scale=10.0, resolution=512, max_batch=1,
)
