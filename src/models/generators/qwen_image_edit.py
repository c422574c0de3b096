"""Adapter to diffusers' ``QwenImageEditInpaintPipeline`` (Qwen-Image-Edit with a mask, Alibaba Qwen team, 2025).

Checkpoint: ``Qwen/Qwen-Image-Edit`` (Qwen-Image's 20B MMDiT trained for editing, its
Qwen2.5-VL-7B text encoder and Wan-style 16-channel VAE), bfloat16 on GPU. The input image goes
in twice: through Qwen2.5-VL beside the instruction (semantics) and as VAE latents appended to the
noisy tokens (appearance). The pipeline adds a mask: the masked latents are re-noised and the
known ones blended back at every step, and ``InpaintGenerator`` pastes the original pixels back
outside the mask. Guidance is true classifier-free guidance (``true_cfg_scale``), active only with
a negative prompt: the pipeline's docstring example and the model card run 50 steps, 4.0 and " ".

The pipeline always runs at about one megapixel: it ignores ``height`` / ``width`` and resizes
every input to ``calculate_dimensions(1024 * 1024, aspect ratio)`` (sides multiples of 32). This
adapter therefore has no ``resolution``: it computes that same size with the pipeline's own
function and resizes image and mask to it itself (so the mask is dilated to cover every touched
run pixel, as for the other entries); the output is resized back to the input's size.
"""

from __future__ import annotations

from typing import Any

from .diffusion import register_diffusers_entry
from .qwen_image import QwenImageInpaintGenerator

_TARGET_AREA = 1024 * 1024  # hard-coded in QwenImageEditInpaintPipeline.__call__ (diffusers 0.42)


class QwenImageEditInpaintGenerator(QwenImageInpaintGenerator):
    """Qwen-Image-Edit inpainting (``QwenImageEditInpaintPipeline``). Shares Qwen-Image's adapter
    (true CFG through ``true_cfg_scale`` with a negative prompt, ``max_sequence_length``); the run
    size is the pipeline's own (about 1 megapixel, aspect ratio kept).

    Args:
        max_sequence_length: at most 1024 (the pipeline refuses more).
        other arguments: see ``QwenImageInpaintGenerator`` (no ``resolution``).

    Raises:
        ValueError: as ``QwenImageInpaintGenerator``; max_sequence_length > 1024.
    """

    pipeline_class = "QwenImageEditInpaintPipeline"
    name = "qwen-image-edit-inpaint"

    def __init__(self, model: str, **kwargs: Any):
        super().__init__(model, **kwargs)
        if self.max_sequence_length > 1024:
            raise ValueError(f"{self.name}: max_sequence_length must be <= 1024, got {self.max_sequence_length}")

    def _run_size(self, height: int, width: int, multiple: int) -> tuple[int, int]:
        from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_inpaint import calculate_dimensions

        run_w, run_h, _ = calculate_dimensions(_TARGET_AREA, width / height)
        return run_h // multiple * multiple, run_w // multiple * multiple


build_qwen_image_edit_inpaint = register_diffusers_entry(
    "qwen-image-edit-inpaint", QwenImageEditInpaintGenerator,
    description="Qwen-Image-Edit inpainting (QwenImageEditInpaintPipeline)", pipeline="QwenImageEditInpaintPipeline",
    exclude=("resolution",), steps=50, guidance_scale=4.0, negative_prompt=" ", max_batch=2,
)
