"""BrushNet (Ju et al., ECCV 2024) and PowerPaint v2 (Zhuang et al., ECCV 2024) on a stock diffusers UNet.

BrushNet is a second, trainable UNet-like branch next to a frozen Stable Diffusion UNet. It takes
the noisy latents concatenated with the masked-image latents and the down-sampled mask (4 + 4 + 1
channels), runs its own down / mid / up blocks, and every intermediate feature goes through a
zero-initialised 1x1 convolution and is ADDED to the frozen UNet's feature at the same place:
after ``conv_in``, after each (resnet [+ attention]) pair and each down-/up-sampler, and after the
mid block (paper section 3.2 "Masked Image Guidance"; the placement follows the authors' code,
TencentARC/BrushNet ``src/diffusers/models/brushnet.py`` and their edited ``unet_2d_condition.py``).
PowerPaint v2 is the same branch with cross-attention blocks ("BrushNet_CA"), fed by its own CLIP
text encoder in which learned task-prompt tokens (``P_ctxt``, ``P_shape``, ``P_obj``, ten vectors
each) replace words of the prompt (open-mmlab/PowerPaint ``app.py``, ``powerpaint/utils/utils.py``).

This is our own code, written to load the published weights unchanged:

- ``BrushNetModel`` (in ``brushnet_model``, imported on first use: diffusers takes seconds to
  import) has the authors' config keys and parameter names, so
  ``BrushNetModel.from_pretrained("<folder>/segmentation_mask_brushnet_ckpt")`` reads their
  ``config.json`` + ``diffusion_pytorch_model.safetensors``.
- ``brushnet_residuals_added`` adds the branch's features to an unmodified
  ``diffusers.UNet2DConditionModel`` through forward hooks (diffusers 0.42 has no BrushNet inputs).
- ``BrushNetInpaintPipeline`` is the denoising loop (the authors' ``StableDiffusionBrushNetPipeline``
  and ``StableDiffusionPowerPaintBrushNetPipeline``, reduced to what inpainting needs).
- ``BrushNetInpaintGenerator`` / ``PowerPaintInpaintGenerator`` are the zoo adapters
  (``create_generator("brushnet", model=..., brushnet=...)``).

The SD 1.5 and SDXL BrushNet checkpoints are supported (``brushnet`` / ``brushnet-sdxl``), and
PowerPaint v2 on SD 1.5; docs/recipes/brgen_models.md names the checkpoints this code expects.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import drop_family, process_cache
from .brushnet_blocks import BrushNetResiduals, _call_block, _down_points, _first_tensor, _up_points, _with_added
from .diffusion import DiffusersInpaintGenerator, quiet_progress_bars, register_diffusers_entry

_BRUSHNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
# PowerPaint v2's learned task tokens: names and vectors per token as in the authors' app.py.
POWERPAINT_TASK_TOKENS = ("P_ctxt", "P_shape", "P_obj")
POWERPAINT_VECTORS_PER_TOKEN = 10
POWERPAINT_TASKS = ("text-guided", "shape-guided", "object-removal", "image-outpainting")


@contextlib.contextmanager
def brushnet_residuals_added(unet: Any, residuals: BrushNetResiduals) -> Iterator[None]:
    """While active, ``unet`` (a stock diffusers ``UNet2DConditionModel``) adds ``residuals`` where
    the authors' edited UNet does: the first to ``conv_in``'s output on the way down (the skip
    connection keeps the un-added value, as in their code), one after each down pair / downsampler,
    one after the mid block, one after each up pair / upsampler.

    Raises:
        ValueError: the residual counts do not match the UNet's blocks (a branch built for another UNet).
    """
    down_points = _down_points(unet)
    up_points = [point for block in unet.up_blocks for point in _up_points(block)]
    if len(residuals.down) != 1 + len(down_points) or len(residuals.up) != len(up_points):
        raise ValueError(f"BrushNet residuals ({len(residuals.down)} down, {len(residuals.up)} up) do not fit this "
                         f"UNet ({1 + len(down_points)} down, {len(up_points)} up): branch built for another UNet?")

    def add_to_input(residual: Any) -> Any:
        def hook(_module: Any, args: tuple, kwargs: dict) -> tuple:
            if "hidden_states" in kwargs:
                kwargs = {**kwargs, "hidden_states": kwargs["hidden_states"] + residual}
            else:
                args = (args[0] + residual, *args[1:])
            return args, kwargs
        return hook

    def add_to_output(residual: Any) -> Any:
        return lambda _module, _inputs, output: _with_added(output, residual)

    handles = [unet.down_blocks[0].register_forward_pre_hook(add_to_input(residuals.down[0]), with_kwargs=True)]
    handles += [p.register_forward_hook(add_to_output(r)) for p, r in zip(down_points, residuals.down[1:])]
    handles.append(unet.mid_block.register_forward_hook(add_to_output(residuals.mid)))
    handles += [p.register_forward_hook(add_to_output(r)) for p, r in zip(up_points, residuals.up)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def task_prompt_embedding(wrapped: Any, starts: dict[str, int], vectors: int) -> Any:
    """PowerPaint's token embedding with learned task prompts (the authors' ``EmbeddingLayerWithFixes``).

    Wraps a CLIP ``token_embedding`` (nn.Embedding, kept as ``wrapped``): ids below its size look it
    up; ids ``starts[name] .. starts[name] + vectors - 1`` take row ``id - start`` of the learned
    ``trainable_embeddings[name]`` ((vectors, D), initialised to the mean embedding; the published
    text encoder file overwrites them, and its key names match these parameter names)."""
    import torch

    class _Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wrapped = wrapped
            self.starts = dict(starts)
            self.vectors = int(vectors)
            init = wrapped.weight.detach().mean(0, keepdim=True).repeat(self.vectors, 1)
            self.trainable_embeddings = torch.nn.ParameterDict(
                {name: torch.nn.Parameter(init.clone()) for name in starts})

        @property
        def weight(self) -> Any:
            return self.wrapped.weight

        def forward(self, input_ids: Any) -> Any:
            base = self.wrapped(torch.where(input_ids < self.wrapped.num_embeddings, input_ids, 0))
            for name, start in self.starts.items():
                offset = input_ids - start
                hit = (offset >= 0) & (offset < self.vectors)
                if hit.any():
                    learned = self.trainable_embeddings[name][offset.clamp(0, self.vectors - 1)]
                    base = torch.where(hit[..., None], learned.to(base.dtype), base)
            return base

    return _Embedding()


def add_task_tokens(tokenizer: Any, text_encoder: Any, names: Sequence[str] = POWERPAINT_TASK_TOKENS,
                    vectors: int = POWERPAINT_VECTORS_PER_TOKEN) -> dict[str, list[str]]:
    """Add PowerPaint's task tokens to ``tokenizer`` (``P_ctxt_0 .. P_ctxt_9`` etc., in the
    authors' order so the ids match theirs) and wrap ``text_encoder``'s token embedding.
    Returns the word -> sub-token map used by ``expand_task_tokens``."""
    token_map: dict[str, list[str]] = {}
    starts: dict[str, int] = {}
    for name in names:
        tokens = [f"{name}_{i}" for i in range(vectors)]
        if tokenizer.add_tokens(tokens) != vectors:
            raise ValueError(f"tokenizer already has PowerPaint task tokens {name}_*: add them only once")
        token_map[name] = tokens
        starts[name] = tokenizer.convert_tokens_to_ids(tokens[0])
    embeddings = getattr(text_encoder, "text_model", text_encoder).embeddings  # transformers 4 / 5 layouts
    embeddings.token_embedding = task_prompt_embedding(embeddings.token_embedding, starts, vectors)
    return token_map


def expand_task_tokens(text: str, token_map: dict[str, list[str]]) -> str:
    """``"a lake P_ctxt"`` -> ``"a lake P_ctxt_0 ... P_ctxt_9"`` (whole words only)."""
    for name, tokens in token_map.items():
        text = re.sub(rf"(?<![\w]){re.escape(name)}(?![\w])", " ".join(tokens), text)
    return text


def powerpaint_task_prompts(prompt: str, negative_prompt: str, task: str) -> dict[str, str]:
    """The texts of one PowerPaint v2 call for ``task``, as the authors' ``app.py`` builds them for the
    BrushNet-based version: the branch's text encoder sees ONLY task tokens (``promptA`` / ``promptB``,
    mixed by the fitting degree, and their negatives), the UNet's sees the user prompt (``promptU``),
    with " empty scene blur" appended for object removal and " empty scene" for outpainting.

    Returns a dict with keys promptA, promptB, negative_promptA, negative_promptB, promptU,
    negative_promptU.

    Raises:
        ValueError: unknown ``task`` (the message lists ``POWERPAINT_TASKS``).
    """
    if task not in POWERPAINT_TASKS:
        raise ValueError(f"unknown PowerPaint task {task!r}; known: {list(POWERPAINT_TASKS)}")
    if task in ("object-removal", "image-outpainting"):
        a, b, neg_a, neg_b = " P_ctxt", " P_ctxt", " P_obj", " P_obj"
        prompt = prompt + (" empty scene blur" if task == "object-removal" else " empty scene")
    elif task == "shape-guided":
        a, b, neg_a, neg_b = " P_shape", " P_ctxt", "P_shape", "P_ctxt"
    else:
        a, b, neg_a, neg_b = " P_obj", " P_obj", "P_obj", "P_obj"
    return {"promptA": a, "promptB": b, "negative_promptA": neg_a, "negative_promptB": neg_b,
            "promptU": prompt, "negative_promptU": negative_prompt}


def _check_folder(path: str | Path, what: str, required: Sequence[str]) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what}: {folder} is not a folder")
    missing = [name for name in required if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"{what}: {folder} lacks {missing}")
    return folder


class BrushNetInpaintPipeline:
    """Stable Diffusion 1.5 + a BrushNet branch: the denoising loop of the authors' pipelines.

    Components are diffusers / transformers objects: ``vae`` (AutoencoderKL), ``text_encoder`` +
    ``tokenizer`` (CLIP; the UNet's prompt), ``unet`` (UNet2DConditionModel, 4 input channels,
    frozen), ``scheduler``, ``brushnet`` (``BrushNetModel``) and, for PowerPaint v2,
    ``text_encoder_brushnet`` (a second CLIP text encoder with task tokens, see ``add_task_tokens``)
    and ``task_token_map``. Without it the branch gets the UNet's prompt embeddings, as in BrushNet.
    """

    vae_scale_factor = 8

    def __init__(self, vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any, brushnet: Any,
                 text_encoder_brushnet: Any = None, task_token_map: dict[str, list[str]] | None = None):
        if unet.config.in_channels != brushnet.config.in_channels:
            raise ValueError(f"BrushNet expects a {brushnet.config.in_channels}-channel UNet, got "
                             f"{unet.config.in_channels} (use the text-to-image SD 1.5 UNet, not an inpainting one)")
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.unet, self.scheduler, self.brushnet = unet, scheduler, brushnet
        self.text_encoder_brushnet, self.task_token_map = text_encoder_brushnet, task_token_map or {}
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, base_model: str | Path, brushnet: str | Path, torch_dtype: Any = None) -> Any:
        """Load a SD 1.5 diffusers folder (or hub id; ``HF_HUB_OFFLINE`` honoured) and a BrushNet
        checkpoint folder (``config.json`` + ``diffusion_pytorch_model.safetensors``, as released).

        Raises:
            FileNotFoundError: ``brushnet`` is not a folder with those files.
        """
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        from .brushnet_model import BrushNetModel

        folder = _check_folder(brushnet, "BrushNet checkpoint", ["config.json", _BRUSHNET_WEIGHTS])
        kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}  # diffusers 0.42 / transformers 5 name
        with quiet_progress_bars():
            parts = dict(
                vae=AutoencoderKL.from_pretrained(base_model, subfolder="vae", **kwargs),
                text_encoder=CLIPTextModel.from_pretrained(base_model, subfolder="text_encoder", **kwargs),
                tokenizer=CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer"),
                unet=UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", **kwargs),
                scheduler=DDIMScheduler.from_pretrained(base_model, subfolder="scheduler"),
                brushnet=BrushNetModel.from_pretrained(folder, **kwargs),
            )
        return cls(**parts)

    @classmethod
    def from_pretrained_powerpaint(cls, base_model: str | Path, powerpaint: str | Path,
                                   text_encoder_model: str | Path | None = None, torch_dtype: Any = None) -> Any:
        """PowerPaint v2 as the authors load it (``app.py``, version ppt-v2): the base SD 1.5 folder
        (they use realisticVisionV60B1_v51VAE) gives VAE, UNet, tokenizer and text encoder; the branch
        is ``BrushNet_CA`` shaped after the UNet, its weights from
        ``<powerpaint>/diffusion_pytorch_model.safetensors``; the branch's text encoder is a CLIP text
        encoder (from ``text_encoder_model``, the SD 1.5 folder in their code; default ``base_model``)
        with the task tokens added, its weights from ``<powerpaint>/pytorch_model.bin``.

        Raises:
            FileNotFoundError: ``powerpaint`` lacks either file.
            ValueError: a weights file misses keys of the branch or the learned task tokens.
        """
        import torch
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from safetensors.torch import load_file
        from transformers import CLIPTextModel, CLIPTokenizer

        from .brushnet_model import BrushNetModel

        folder = _check_folder(powerpaint, "PowerPaint v2 checkpoint", [_BRUSHNET_WEIGHTS, "pytorch_model.bin"])
        kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}  # diffusers 0.42 / transformers 5 name
        with quiet_progress_bars():
            unet = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet", **kwargs)
            tokenizer = CLIPTokenizer.from_pretrained(base_model, subfolder="tokenizer")
            text_encoder_brushnet = CLIPTextModel.from_pretrained(text_encoder_model or base_model,
                                                                  subfolder="text_encoder", **kwargs)
            parts = dict(vae=AutoencoderKL.from_pretrained(base_model, subfolder="vae", **kwargs),
                         text_encoder=CLIPTextModel.from_pretrained(base_model, subfolder="text_encoder", **kwargs),
                         scheduler=DDIMScheduler.from_pretrained(base_model, subfolder="scheduler"))
        branch = BrushNetModel.from_unet_config(unet.config, cross_attention=True)
        if branch.dtype != unet.dtype:
            branch = branch.to(dtype=unet.dtype)
        state = load_file(str(folder / _BRUSHNET_WEIGHTS))
        missing, unexpected = branch.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{folder / _BRUSHNET_WEIGHTS}: does not fit BrushNet_CA for this UNet "
                             f"(missing {missing[:5]}..., unexpected {unexpected[:5]}...)")
        token_map = add_task_tokens(tokenizer, text_encoder_brushnet)
        text_state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        if not hasattr(text_encoder_brushnet, "text_model"):
            # The release was saved with transformers 4 ("text_model." prefix); transformers 5 has no such level.
            text_state = {key.removeprefix("text_model."): value for key, value in text_state.items()}
        learned = [f"embeddings.token_embedding.trainable_embeddings.{n}" for n in token_map]
        prefix = "text_model." if hasattr(text_encoder_brushnet, "text_model") else ""
        if any(prefix + key not in text_state for key in learned):
            raise ValueError(f"{folder / 'pytorch_model.bin'}: no learned task tokens {learned}")
        # strict=False as the authors: the file may hold only part of the encoder.
        text_encoder_brushnet.load_state_dict(text_state, strict=False)
        return cls(unet=unet, tokenizer=tokenizer, brushnet=branch, text_encoder_brushnet=text_encoder_brushnet,
                   task_token_map=token_map, **parts)

    @classmethod
    def from_pretrained_sdxl(cls, base_model: str | Path, brushnet: str | Path, torch_dtype: Any = None) -> Any:
        """An SDXL base (diffusers ``StableDiffusionXLPipeline`` folder or hub id, 4-channel UNet) and an
        SDXL BrushNet folder (``config.json`` with ``addition_embed_type: text_time`` + weights).
        The SDXL pipeline object is kept as ``sdxl`` for its two-encoder ``encode_prompt``.

        Raises:
            FileNotFoundError: ``brushnet`` lacks its files.
            ValueError: the branch is not an SDXL one.
        """
        from diffusers import StableDiffusionXLPipeline

        from .brushnet_model import BrushNetModel

        folder = _check_folder(brushnet, "SDXL BrushNet checkpoint", ["config.json", _BRUSHNET_WEIGHTS])
        kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}  # diffusers 0.42 / transformers 5 name
        with quiet_progress_bars():
            sdxl = StableDiffusionXLPipeline.from_pretrained(base_model, **kwargs)
            branch = BrushNetModel.from_pretrained(folder, **kwargs)
        if branch.config.addition_embed_type != "text_time":
            raise ValueError(f"{folder}: not an SDXL BrushNet (no text-time embedding); use the SD 1.5 pipeline")
        pipe = cls(vae=sdxl.vae, text_encoder=sdxl.text_encoder, tokenizer=sdxl.tokenizer, unet=sdxl.unet,
                   scheduler=sdxl.scheduler, brushnet=branch)
        pipe.sdxl = sdxl
        return pipe

    def to(self, device: str) -> Any:
        if getattr(self, "sdxl", None) is not None:
            self.sdxl.to(device)
        for part in (self.vae, self.text_encoder, self.unet, self.brushnet, self.text_encoder_brushnet):
            if part is not None:
                part.to(device)
        return self

    def encode_text(self, texts: Sequence[str], encoder: Any = None) -> Any:
        """(len(texts), 77, D) last hidden states of ``encoder`` (default: the UNet's text encoder);
        task-token words are expanded first when the encoder is the branch's."""
        import torch

        encoder = encoder if encoder is not None else self.text_encoder
        if encoder is self.text_encoder_brushnet:
            texts = [expand_task_tokens(text, self.task_token_map) for text in texts]
        ids = self.tokenizer(list(texts), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return encoder(ids.to(encoder.device))[0]

    def __call__(self, image: Any, keep: Any, prompt_embeds: Any, negative_prompt_embeds: Any,
                 brushnet_embeds: Any = None, brushnet_negative_embeds: Any = None, num_inference_steps: int = 50,
                 guidance_scale: float = 7.5, generators: Sequence[Any] = (), conditioning_scale: float = 1.0,
                 pooled_prompt_embeds: Any = None, negative_pooled_prompt_embeds: Any = None,
                 time_ids: Any = None) -> Any:
        """Inpaint one image ``len(generators)`` times.

        Args:
            image: (1, 3, H, W) float in [-1, 1], H and W multiples of ``vae_scale_factor``.
            keep: (1, 1, H, W) float, 1 = keep, 0 = repaint (the authors' convention).
            prompt_embeds, negative_prompt_embeds: (1, 77, D) UNet text embeddings.
            brushnet_embeds, brushnet_negative_embeds: the branch's (PowerPaint); default the UNet's.
            generators: one ``torch.Generator`` per output.
            pooled_prompt_embeds, negative_pooled_prompt_embeds, time_ids: SDXL's text-time
                conditioning ((1, D_pooled) each and (1, 6) size / crop ids), for UNet and branch.

        Returns:
            (len(generators), 3, H, W) float in [0, 1]; the caller pastes the original outside the mask.
        """
        import torch

        count = len(generators)
        if count < 1:
            raise ValueError("BrushNetInpaintPipeline needs at least one generator")
        device, dtype = self.unet.device, self.unet.dtype
        image, keep = image.to(device, dtype), keep.to(device, dtype)
        # The branch sees the image with the hole blacked out (-1), as the authors' scripts feed it.
        masked = torch.where(keep > 0.5, image, torch.full_like(image, -1.0))
        scaling = self.vae.config.scaling_factor
        masked_latents = self.vae.encode(masked).latent_dist.sample(generator=generators[0]) * scaling
        keep_latent = torch.nn.functional.interpolate(keep, size=masked_latents.shape[-2:])
        cond = torch.cat([masked_latents, keep_latent], dim=1).repeat(count, 1, 1, 1)

        guided = guidance_scale > 1.0
        brushnet_embeds = prompt_embeds if brushnet_embeds is None else brushnet_embeds
        brushnet_negative_embeds = negative_prompt_embeds if brushnet_negative_embeds is None else brushnet_negative_embeds
        unet_text = prompt_embeds.repeat(count, 1, 1)
        branch_text = brushnet_embeds.repeat(count, 1, 1)
        if guided:
            unet_text = torch.cat([negative_prompt_embeds.repeat(count, 1, 1), unet_text])
            branch_text = torch.cat([brushnet_negative_embeds.repeat(count, 1, 1), branch_text])
            cond = torch.cat([cond, cond])

        added = None
        if pooled_prompt_embeds is not None:
            pooled = pooled_prompt_embeds.repeat(count, 1)
            ids = time_ids.repeat(count, 1)
            if guided:
                pooled = torch.cat([negative_pooled_prompt_embeds.repeat(count, 1), pooled])
                ids = torch.cat([ids, ids])
            added = {"text_embeds": pooled.to(device, dtype), "time_ids": ids.to(device, dtype)}

        shape = (1, self.unet.config.in_channels, *masked_latents.shape[-2:])
        latents = torch.cat([torch.randn(shape, generator=g, device=g.device, dtype=torch.float32)
                             for g in generators]).to(device, dtype)
        self.scheduler.set_timesteps(int(num_inference_steps), device=device)
        latents = latents * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            model_input = torch.cat([latents, latents]) if guided else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            residuals = self.brushnet(model_input, t, branch_text.to(dtype), cond, conditioning_scale,
                                      added_cond_kwargs=added)
            with brushnet_residuals_added(self.unet, residuals):
                noise = self.unet(model_input, t, encoder_hidden_states=unet_text.to(dtype),
                                  added_cond_kwargs=added).sample
            if guided:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance_scale * (text - uncond)
            latents = self.scheduler.step(noise, t, latents).prev_sample
        decoded = self.vae.decode(latents / scaling).sample
        return (decoded.float() / 2 + 0.5).clamp(0, 1)


# A real base + branch pair is gigabytes, so every generator instance naming the same (kind, base,
# branch, device, dtype, scheduler options) shares one pipeline, held in the process's model cache.
_FAMILY = "brushnet"


def clear_brushnet_cache() -> None:
    """Drop every cached BrushNet / PowerPaint pipeline."""
    drop_family(_FAMILY)


class BrushNetInpaintGenerator(DiffusersInpaintGenerator):
    """BrushNet on Stable Diffusion 1.5 (BR-Gen's prompt-based inpainter, paper section 3.3).

    Args:
        model: the SD 1.5 base: a diffusers folder or hub id with vae / text_encoder / tokenizer /
            unet / scheduler (the authors use realisticVisionV60B1_v51VAE or stable-diffusion-v1-5).
        brushnet: a BrushNet checkpoint folder (``segmentation_mask_brushnet_ckpt`` or
            ``random_mask_brushnet_ckpt``).
        steps, guidance_scale, resolution, device, dtype, negative_prompt, max_batch, scheduler,
        scheduler_kwargs: as ``DiffusersInpaintGenerator`` (the authors' script: 50 steps of
        ``UniPCMultistepScheduler``, guidance 7.5).
        conditioning_scale: weight of the branch's features (1.0 in the authors' scripts).

    Raises:
        ValueError: as ``DiffusersInpaintGenerator``; conditioning_scale < 0.
    """

    name = "brushnet"
    pipeline_class = "BrushNetInpaintPipeline"

    def __init__(self, model: str, brushnet: str, steps: int = 50, guidance_scale: float = 7.5,
                 resolution: int | None = None, device: str = "cpu", dtype: str = "float32",
                 negative_prompt: str | None = None, conditioning_scale: float = 1.0, max_batch: int = 4,
                 scheduler: str | None = "UniPCMultistepScheduler", scheduler_kwargs: dict[str, Any] | None = None,
                 name: str | None = None):
        if float(conditioning_scale) < 0:
            raise ValueError(f"conditioning_scale must be >= 0, got {conditioning_scale}")
        self._configure(model, steps, guidance_scale, resolution, device, dtype, negative_prompt, max_batch,
                        scheduler, scheduler_kwargs, None)
        self.branch = str(brushnet)
        self.conditioning_scale = float(conditioning_scale)
        self.strength = 1.0
        if name is not None:
            self.name = name

    def _load_pipeline(self, torch_dtype: Any) -> BrushNetInpaintPipeline:
        return BrushNetInpaintPipeline.from_pretrained(self.model, self.branch, torch_dtype=torch_dtype)

    def load(self) -> BrushNetInpaintPipeline:
        """The (cached) pipeline, loaded with ``from_pretrained`` on first use."""
        import torch

        def build() -> BrushNetInpaintPipeline:
            pipe = self._load_pipeline(getattr(torch, self.dtype))
            self.prepare(pipe)
            return pipe.to(self.device)

        key = (_FAMILY, self.pipeline_class, self.model, self.branch, self.device, self.dtype, repr(self.load_options()))
        return process_cache().get(key, build)

    def _texts(self, pipe: BrushNetInpaintPipeline, prompt: str, height: int, width: int) -> dict[str, Any]:
        negative = self.negative_prompt or ""
        return {"prompt_embeds": pipe.encode_text([prompt]), "negative_prompt_embeds": pipe.encode_text([negative])}

    def _call(self, pipe: Any, image: np.ndarray, mask: np.ndarray, prompt: str, generators: list[Any],
              height: int, width: int) -> Sequence[np.ndarray]:
        import torch

        pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        keep = torch.from_numpy(~mask)[None, None].float()
        out = pipe(pixels, keep, num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                   generators=generators, conditioning_scale=self.conditioning_scale,
                   **self._texts(pipe, prompt, height, width))
        return list(out.permute(0, 2, 3, 1).cpu().numpy())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "branch": self.branch, "conditioning_scale": self.conditioning_scale}


class PowerPaintInpaintGenerator(BrushNetInpaintGenerator):
    """PowerPaint v2 (BrushNet_CA + learned task prompts) on Stable Diffusion 1.5.

    Args:
        model: the SD 1.5 base folder (the authors: ``realisticVisionV60B1_v51VAE`` inside the
            PowerPaint-v2-1 release).
        powerpaint: the ``PowerPaint_Brushnet`` folder of that release
            (``diffusion_pytorch_model.safetensors`` + ``pytorch_model.bin``).
        text_encoder_model: where the branch's text encoder architecture comes from (the authors:
            stable-diffusion-v1-5); default ``model``.
        task: one of ``POWERPAINT_TASKS``; BR-Gen fills regions from a description: "text-guided".
        fitting_degree: the authors' ``tradoff``: promptA / promptB mix of the branch's embeddings.
        Other arguments as ``BrushNetInpaintGenerator`` (the authors' app: 45 steps, guidance 7.5).

    Raises:
        ValueError: unknown task, fitting_degree outside [0, 1], and as ``BrushNetInpaintGenerator``.
    """

    name = "powerpaint"
    pipeline_class = "PowerPaintV2Pipeline"

    def __init__(self, model: str, powerpaint: str, text_encoder_model: str | None = None,
                 task: str = "text-guided", fitting_degree: float = 1.0, steps: int = 45,
                 guidance_scale: float = 7.5, resolution: int | None = None, device: str = "cpu",
                 dtype: str = "float32", negative_prompt: str | None = None, conditioning_scale: float = 1.0,
                 max_batch: int = 4, scheduler: str | None = "UniPCMultistepScheduler",
                 scheduler_kwargs: dict[str, Any] | None = None, name: str | None = None):
        powerpaint_task_prompts("", "", task)  # fail on an unknown task at construction
        if not 0.0 <= float(fitting_degree) <= 1.0:
            raise ValueError(f"fitting_degree must be in [0, 1], got {fitting_degree}")
        super().__init__(model, powerpaint, steps=steps, guidance_scale=guidance_scale, resolution=resolution,
                         device=device, dtype=dtype, negative_prompt=negative_prompt,
                         conditioning_scale=conditioning_scale, max_batch=max_batch, scheduler=scheduler,
                         scheduler_kwargs=scheduler_kwargs, name=name)
        self.text_encoder_model = text_encoder_model
        self.task = task
        self.fitting_degree = float(fitting_degree)

    def _load_pipeline(self, torch_dtype: Any) -> BrushNetInpaintPipeline:
        return BrushNetInpaintPipeline.from_pretrained_powerpaint(
            self.model, self.branch, text_encoder_model=self.text_encoder_model, torch_dtype=torch_dtype)

    def load_options(self) -> dict[str, Any]:
        return {**super().load_options(), "text_encoder_model": self.text_encoder_model}

    def _texts(self, pipe: BrushNetInpaintPipeline, prompt: str, height: int, width: int) -> dict[str, Any]:
        texts = powerpaint_task_prompts(prompt, self.negative_prompt or "", self.task)
        branch = pipe.text_encoder_brushnet
        t = self.fitting_degree

        def mixed(a: str, b: str) -> Any:
            return t * pipe.encode_text([texts[a]], branch) + (1 - t) * pipe.encode_text([texts[b]], branch)

        return {"prompt_embeds": pipe.encode_text([texts["promptU"]]),
                "negative_prompt_embeds": pipe.encode_text([texts["negative_promptU"]]),
                "brushnet_embeds": mixed("promptA", "promptB"),
                "brushnet_negative_embeds": mixed("negative_promptA", "negative_promptB")}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task": self.task, "fitting_degree": self.fitting_degree}


class BrushNetXLInpaintGenerator(BrushNetInpaintGenerator):
    """BrushNet on SDXL: ``model`` an SDXL base folder (4-channel UNet, e.g.
    stabilityai/stable-diffusion-xl-base-1.0 or the authors' juggernautXL), ``brushnet`` an SDXL
    BrushNet folder (``segmentation_mask_brushnet_ckpt_sdxl_v1`` / ``random_mask_brushnet_ckpt_sdxl_v0``).
    Size / crop ids are the run size with no crop, as SDXL's own pipelines default. Other
    arguments as ``BrushNetInpaintGenerator``. On fp16 GPUs SDXL's VAE needs float32 (or the
    fp16-fix VAE); use dtype float32 or bfloat16."""

    name = "brushnet-sdxl"
    pipeline_class = "BrushNetXLInpaintPipeline"

    def _load_pipeline(self, torch_dtype: Any) -> BrushNetInpaintPipeline:
        return BrushNetInpaintPipeline.from_pretrained_sdxl(self.model, self.branch, torch_dtype=torch_dtype)

    def _texts(self, pipe: BrushNetInpaintPipeline, prompt: str, height: int, width: int) -> dict[str, Any]:
        import torch

        embeds, negative, pooled, negative_pooled = pipe.sdxl.encode_prompt(
            prompt=[prompt], device=pipe.unet.device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=[self.negative_prompt or ""])
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)
        return {"prompt_embeds": embeds, "negative_prompt_embeds": negative, "pooled_prompt_embeds": pooled,
                "negative_pooled_prompt_embeds": negative_pooled, "time_ids": time_ids}


build_brushnet = register_diffusers_entry(
    "brushnet", BrushNetInpaintGenerator, pipeline="BrushNetInpaintPipeline (models.generators.brushnet)",
    description="BrushNet on SD 1.5 (a mask-conditioned branch added to the frozen UNet; BR-Gen)")
build_brushnet_sdxl = register_diffusers_entry(
    "brushnet-sdxl", BrushNetXLInpaintGenerator, pipeline="BrushNetInpaintPipeline (models.generators.brushnet)",
    description="BrushNet on SDXL (SDXL BrushNet checkpoints; a mask-conditioned branch added to the frozen UNet)")
build_powerpaint = register_diffusers_entry(
    "powerpaint", PowerPaintInpaintGenerator, pipeline="BrushNetInpaintPipeline (models.generators.brushnet)",
    description="PowerPaint v2 on SD 1.5 (BrushNet_CA + learned task prompts; BR-Gen)")
