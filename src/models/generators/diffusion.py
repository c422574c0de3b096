"""The diffusers side shared by every diffusion adapter, and the Stable Diffusion inpainting adapter.

- ``load_pipeline``: one pipeline per (class, checkpoint, device, dtype, options) per process,
  loaded with ``from_pretrained`` (the path a real checkpoint takes) and reused by every generator
  instance naming it. ``set_max_resident`` caps how many of them sit on an accelerator at once:
  the least recently used ones are moved to the CPU (not dropped), so a zoo of a dozen models
  can share one GPU.
- ``DiffusersInpaintGenerator``: the part every family shares (run size, mask resizing, a batch of
  seeds in one call, output conversion, the swap of the scheduler). Each family subclass states
  its pipeline class, the checkpoint it expects and how it calls the pipeline (``_call``), in the
  diffusers manner: an explicit, slightly repetitive adapter per family.
- ``StableDiffusionInpaintGenerator``: ``StableDiffusionInpaintPipeline`` (SD 1.5 / 2 / 2.1
  inpainting checkpoints).

torch and diffusers are imported inside the functions that need them: importing the pipeline
classes costs seconds on CPU, and most users of ``models.generators`` (label maps, provenance,
OpenCV edits) never touch a diffusion model.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..cache import drop_family, family_keys, process_cache
from .base import GENERATORS, InpaintGenerator

_DTYPES = ("float32", "float16", "bfloat16")

# A real checkpoint takes seconds to load and gigabytes to hold; every generator naming it shares
# it. Pipelines live in the process's model cache under ("diffusers", class name, checkpoint,
# device, dtype, options, kwargs): its max_entries is the one limit on what stays loaded. Which
# of them sit on an accelerator is a separate, device-placement limit.
_FAMILY = "diffusers"
_MAX_RESIDENT: list[int | None] = [None]


def _pipelines() -> dict[tuple, Any]:
    """{key without the family: pipeline} of the cached diffusers pipelines, least recently used first."""
    return {key[1:]: pipe for key, pipe in process_cache().items()
            if isinstance(key, tuple) and key and key[0] == _FAMILY}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true"}


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence diffusers' and transformers' loading/saving progress bars, then restore their state.

    Batch jobs load and save pipelines thousands of times; the bars only flood the logs.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was_on = (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled())
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on[0]:
            diffusers_logging.enable_progress_bar()
        if was_on[1]:
            transformers_logging.enable_progress_bar()


def check_dtype(dtype: str) -> None:
    """Raise ValueError unless ``dtype`` is float32, float16 or bfloat16."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")


def _checkpoint_key(model: str) -> str:
    # The same local folder named relatively and absolutely is one checkpoint.
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def _cache_key(model: str, device: str, dtype: str) -> tuple[str, str, str]:
    return (_checkpoint_key(model), device, dtype)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _on_accelerator(device: str) -> bool:
    return not str(device).startswith("cpu")


def set_max_resident(count: int | None) -> None:
    """Keep at most ``count`` cached pipelines on accelerators (None = no limit, the default).

    When a pipeline is needed on a GPU and the limit is reached, the least recently used ones
    are moved to the CPU; they come back on their next use. Raises ValueError if count < 1.
    """
    if count is not None and int(count) < 1:
        raise ValueError(f"max resident pipelines must be >= 1 or None, got {count}")
    _MAX_RESIDENT[0] = None if count is None else int(count)


def set_max_loaded(count: int | None) -> None:
    """Keep at most ``count`` models loaded at all (None = no limit, the default): the limit of the
    process's one model cache (``models.cache.process_cache``), so pipelines, VLMs and every other
    cached model count together; beyond it the least recently used are dropped (their memory is
    freed) and loaded again from disk on their next use. A generator that runs two pipelines per
    call (Kandinsky's prior + decoder, IF's two stages) needs a limit of at least 2.
    Raises ValueError if count < 1."""
    if count is not None and int(count) < 1:
        raise ValueError(f"max loaded pipelines must be >= 1 or None, got {count}")
    process_cache().set_max_entries(count)


def _make_resident(key: tuple, pipe: Any) -> Any:
    device = key[2]
    if not _on_accelerator(device):
        return pipe
    limit = _MAX_RESIDENT[0]
    if limit is not None:
        loaded = _pipelines()
        resident = [k for k, p in loaded.items() if k != key and _on_accelerator(k[2]) and getattr(p, "_editlens_on", k[2]) != "cpu"]
        for other in resident[: max(0, len(resident) - (limit - 1))]:
            loaded[other].to("cpu")
            loaded[other]._editlens_on = "cpu"
    if getattr(pipe, "_editlens_on", device) != device:
        pipe.to(device)
    pipe._editlens_on = device
    return pipe


def load_pipeline(
    pipeline_class: str,
    model: str,
    device: str = "cpu",
    dtype: str = "float32",
    options: dict[str, Any] | None = None,
    prepare: Any = None,
    **from_pretrained_kwargs: Any,
) -> Any:
    """Load (once per process) the diffusers pipeline ``pipeline_class`` from a hub id or folder.

    Args:
        pipeline_class: a class name exported by ``diffusers`` (e.g. "FluxFillPipeline").
        model: hub id (read from the local cache only when ``HF_HUB_OFFLINE`` is "1"/"true")
            or a local folder holding ``model_index.json``.
        device, dtype: where and in which precision the pipeline runs.
        options: anything else that makes this pipeline differ from another one loaded from the
            same checkpoint (a scheduler swap, a fused LoRA); part of the cache key.
        prepare: called once as ``prepare(pipe)`` after loading (before moving to ``device``),
            e.g. to swap the scheduler or fuse a LoRA; its effect must be described by ``options``.
        from_pretrained_kwargs: passed to ``from_pretrained`` (e.g. ``safety_checker=None``).

    Raises:
        ValueError: unknown dtype.
        AttributeError: diffusers has no class ``pipeline_class``.
        OSError: diffusers cannot find the checkpoint.
    """
    check_dtype(dtype)
    key = (pipeline_class, *_cache_key(model, device, dtype), _freeze(options or {}),
           _freeze({k: v for k, v in from_pretrained_kwargs.items() if v is None or isinstance(v, (str, int, float, bool))}))
    def build() -> Any:
        import diffusers
        import torch

        cls = getattr(diffusers, pipeline_class)
        with quiet_progress_bars():
            pipe = cls.from_pretrained(
                model,
                dtype=getattr(torch, dtype),  # diffusers 0.42 name; ``torch_dtype`` is deprecated
                local_files_only=_offline(),
                **from_pretrained_kwargs,
            )
        if prepare is not None:
            prepare(pipe)
        pipe.set_progress_bar_config(disable=True)
        pipe._editlens_on = "cpu"
        return pipe

    return _make_resident(key, process_cache().get((_FAMILY, *key), build))


def load_inpaint_pipeline(model: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """Load (once per process) a ``StableDiffusionInpaintPipeline`` from a hub id or local folder.

    The safety checker is not loaded. Hub files are read from the local cache only when the
    environment variable ``HF_HUB_OFFLINE`` is "1" or "true".

    Raises:
        ValueError: ``dtype`` is not one of float32, float16, bfloat16.
        OSError: diffusers cannot find the checkpoint.
    """
    return load_pipeline(
        "StableDiffusionInpaintPipeline", model, device, dtype, safety_checker=None, requires_safety_checker=False
    )


def clear_pipeline_cache() -> None:
    """Forget every loaded pipeline (frees their memory once no generator holds them)."""
    drop_family(_FAMILY)


def cached_pipelines() -> list[tuple]:
    """Keys (class, checkpoint, device, dtype, options, kwargs) of the loaded pipelines, least
    recently used first."""
    return [key[1:] for key in family_keys(_FAMILY)]


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _interpolation(src_pixels: int, dst_pixels: int) -> int:
    # Area averaging avoids aliasing when shrinking; cubic is sharper when enlarging.
    return cv2.INTER_AREA if dst_pixels < src_pixels else cv2.INTER_CUBIC


def resize_for_run(image: np.ndarray, mask: np.ndarray, run_h: int, run_w: int) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H, W, 3) uint8 and ``mask`` (H, W) bool resized to the run size.

    Any run pixel touching the region is repainted, so the full-size hard mask pasted afterwards
    never exposes pixels the model left alone.
    """
    height, width = image.shape[:2]
    if (run_h, run_w) == (height, width):
        return image, mask
    run_image = cv2.resize(image, (run_w, run_h), interpolation=_interpolation(height * width, run_h * run_w))
    coverage = cv2.resize(mask.astype(np.float32), (run_w, run_h), interpolation=cv2.INTER_AREA)
    return run_image, coverage > 0


def to_uint8(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float (h, w, 3) image in [0, 1] as (height, width, 3) uint8 (resized if needed)."""
    result = (np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if result.shape[:2] != (height, width):
        result = cv2.resize(result, (width, height), interpolation=_interpolation(result.shape[0] * result.shape[1], height * width))
    return result


def mask_image(mask: np.ndarray) -> Image.Image:
    """A hard 0/255 mode-"L" mask: diffusers binarises it anyway, and a soft one would hide what changed."""
    return Image.fromarray(mask.astype(np.uint8) * 255)


def swap_scheduler(pipe: Any, scheduler: str | None, scheduler_kwargs: dict[str, Any] | None) -> None:
    """Replace ``pipe.scheduler`` by diffusers class ``scheduler`` built from the pipeline's own
    scheduler config plus ``scheduler_kwargs`` (e.g. DDIM with timestep_spacing "trailing", as
    Hyper-SD prescribes). No-op when ``scheduler`` is None."""
    if scheduler is None:
        return
    import diffusers

    cls = getattr(diffusers, scheduler, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"unknown diffusers scheduler {scheduler!r}")
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **(scheduler_kwargs or {}))


class DiffusersPipelineSettings:
    """What every diffusers adapter, inpainting or text-to-image, keeps and how it loads its
    pipeline: checkpoint, steps, guidance, run resolution, device / dtype, negative prompt, batch
    cap, scheduler swap and weight variant. ``_configure`` checks and stores them; ``load`` goes
    through the process-wide pipeline cache (``load_pipeline``). Families override
    ``load_options`` / ``prepare`` / ``from_pretrained_kwargs`` / ``run_multiple``."""

    pipeline_class = ""

    def _configure(self, model: str, steps: int, guidance_scale: float, resolution: int | None, device: str,
                   dtype: str, negative_prompt: str | None, max_batch: int, scheduler: str | None,
                   scheduler_kwargs: dict[str, Any] | None, variant: str | None) -> None:
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {guidance_scale}")
        if resolution is not None and (int(resolution) <= 0 or int(resolution) % 8):
            raise ValueError(f"resolution must be a positive multiple of 8, got {resolution}")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        check_dtype(dtype)
        self.model = str(model)
        self.steps = int(steps)
        self.guidance_scale = float(guidance_scale)
        self.resolution = None if resolution is None else int(resolution)
        self.device = device
        self.dtype = dtype
        self.negative_prompt = negative_prompt
        self.max_batch = int(max_batch)
        self.scheduler = scheduler
        self.scheduler_kwargs = dict(scheduler_kwargs or {})
        self.variant = variant

    def load_options(self) -> dict[str, Any]:
        """What, beyond the checkpoint, makes this pipeline differ from another of the same
        checkpoint (part of the cache key)."""
        return {"scheduler": self.scheduler, "scheduler_kwargs": self.scheduler_kwargs}

    def prepare(self, pipe: Any) -> None:
        """Called once after loading, before the pipeline moves to its device."""
        swap_scheduler(pipe, self.scheduler, self.scheduler_kwargs)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {"variant": self.variant} if self.variant else {}

    def load(self) -> Any:
        """Return the (cached) diffusers pipeline, loading it if needed."""
        return load_pipeline(self.pipeline_class, self.model, self.device, self.dtype, options=self.load_options(),
                             prepare=self.prepare, **self.from_pretrained_kwargs())

    def run_multiple(self, pipe: Any) -> int:
        """Both run sides are rounded to a multiple of this (the VAE's downsampling by default)."""
        return math.lcm(8, int(getattr(pipe, "vae_scale_factor", 8)))


class DiffusersInpaintGenerator(DiffusersPipelineSettings, InpaintGenerator):
    """What every diffusers inpainting adapter shares; a family subclass sets ``pipeline_class``
    and implements ``_call``.

    Args:
        model: hub id or local folder holding a ``model_index.json``.
        steps: denoising steps.
        guidance_scale: classifier-free guidance; <= 1 disables it for most pipelines.
        resolution: if set, the diffusion runs with the longer image side at ``resolution``
            pixels (aspect ratio kept; a square image runs at resolution x resolution) and the
            result is resized back; if None it runs at the image's own size. Either way both
            sides are rounded to the multiple the pipeline requires (``run_multiple``).
        device: torch device string ("cpu", "cuda", "cuda:1", ...).
        dtype: "float32" (the default, and the only sensible one on CPU), "float16" or "bfloat16".
        negative_prompt: passed to the pipeline on every call (where the pipeline takes one).
        strength: how much of the masked region is re-noised (1.0 = from pure noise).
        max_batch: the most seeds run in one pipeline call (several candidates per edit).
        scheduler, scheduler_kwargs: a diffusers scheduler class name to swap in (built from the
            checkpoint's scheduler config plus these kwargs), or None to keep the checkpoint's.
        variant: weight-file variant to load (e.g. "fp16"), or None.
        name: the registry name this instance reports.

    The pipeline is loaded on first use (or by ``load()``) and shared through the process cache.

    Raises:
        ValueError: steps < 1, guidance_scale < 0, resolution not a positive multiple of 8,
            strength outside (0, 1], max_batch < 1, unknown dtype.
    """

    name = "diffusers"

    def __init__(
        self,
        model: str,
        steps: int = 30,
        guidance_scale: float = 7.5,
        resolution: int | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        negative_prompt: str | None = None,
        strength: float = 1.0,
        max_batch: int = 4,
        scheduler: str | None = None,
        scheduler_kwargs: dict[str, Any] | None = None,
        variant: str | None = None,
        name: str | None = None,
    ):
        if not 0.0 < float(strength) <= 1.0:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        self._configure(model, steps, guidance_scale, resolution, device, dtype, negative_prompt, max_batch,
                        scheduler, scheduler_kwargs, variant)
        if name is not None:
            self.name = name
        self.strength = float(strength)

    # ------------------------------------------------------------------ sizes
    def run_size(self, height: int, width: int, vae_scale_factor: int = 8) -> tuple[int, int]:
        """(height, width) the diffusion runs at for an image of ``height`` x ``width``, both
        rounded to a multiple of ``lcm(8, vae_scale_factor)``."""
        return self._run_size(height, width, math.lcm(8, int(vae_scale_factor)))

    def _run_size(self, height: int, width: int, multiple: int) -> tuple[int, int]:
        scale = 1.0 if self.resolution is None else self.resolution / max(height, width)
        return _round_to(height * scale, multiple), _round_to(width * scale, multiple)

    # ------------------------------------------------------------------ running
    def _generators(self, seeds: Sequence[int]) -> list[Any]:
        import torch

        return [torch.Generator(self.device).manual_seed(int(seed)) for seed in seeds]

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        return self._inpaint_batch(image, mask, prompt, [seed])[0]

    def _inpaint_batch(self, image: np.ndarray, mask: np.ndarray, prompt: str, seeds: list[int]) -> list[np.ndarray]:
        import torch

        pipe = self.load()
        height, width = image.shape[:2]
        run_h, run_w = self._run_size(height, width, self.run_multiple(pipe))
        run_image, run_mask = resize_for_run(image, mask, run_h, run_w)
        results: list[np.ndarray] = []
        for start in range(0, len(seeds), self.max_batch):
            chunk = seeds[start:start + self.max_batch]
            with torch.inference_mode():
                images = self._call(pipe, run_image, run_mask, prompt, self._generators(chunk), run_h, run_w)
            results += [to_uint8(array, height, width) for array in images]
        return results

    def _call(self, pipe: Any, image: np.ndarray, mask: np.ndarray, prompt: str, generators: list[Any],
              height: int, width: int) -> Sequence[np.ndarray]:
        """Run the pipeline once for ``len(generators)`` outputs; return float (h, w, 3) arrays in [0, 1].

        This is diffusers' common inpainting call (SD, SDXL, SD3, FLUX Fill: image + mask_image +
        strength); a family adds arguments in ``extra_call_kwargs`` or overrides this method when its
        pipeline is called differently (blended latents, Kandinsky's prior, DeepFloyd's cascade)."""
        count = len(generators)
        kwargs = {}
        if self.negative_prompt is not None:
            kwargs["negative_prompt"] = batched(self.negative_prompt, count)
        output = pipe(
            prompt=batched(prompt, count),
            image=batched(Image.fromarray(image), count),
            mask_image=batched(mask_image(mask), count),
            height=height,
            width=width,
            strength=self.strength,
            num_inference_steps=self.steps,
            generator=generators,
            output_type="np",
            **kwargs,
            **self.guidance_kwargs(),
            **self.extra_call_kwargs(),
        )
        return list(output.images)

    def guidance_kwargs(self) -> dict[str, Any]:
        """How ``guidance_scale`` reaches the pipeline: ``guidance_scale`` for most; a family whose
        pipeline names classifier-free guidance differently (Qwen-Image's ``true_cfg_scale``)
        overrides this."""
        return {"guidance_scale": self.guidance_scale}

    def extra_call_kwargs(self) -> dict[str, Any]:
        """Family-specific pipeline arguments added to the common inpainting call."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"registry": self.name, "model": self.model, "pipeline": self.pipeline_class, "steps": self.steps,
                "guidance_scale": self.guidance_scale, "resolution": self.resolution, "dtype": self.dtype,
                "scheduler": self.scheduler or ""}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, steps={self.steps}, "
            f"guidance_scale={self.guidance_scale}, resolution={self.resolution}, device={self.device!r}, "
            f"dtype={self.dtype!r})"
        )


def batched(value: Any, count: int) -> list[Any]:
    """``value`` repeated ``count`` times: one prompt / image / mask per seed, so every per-sample
    step of a pipeline (VAE sampling included) uses that sample's own generator."""
    return [value] * count


class StableDiffusionInpaintGenerator(DiffusersInpaintGenerator):
    """A Stable Diffusion 1.x / 2.x inpainting checkpoint (``StableDiffusionInpaintPipeline``).

    Checkpoints: ``stable-diffusion-v1-5/stable-diffusion-inpainting`` (SD1.5),
    ``stabilityai/stable-diffusion-2-inpainting`` (SD2 / the SD2.1 class: Stability released no
    separate 2.1 inpainting model), at 512 px. See ``DiffusersInpaintGenerator`` for the arguments.
    """

    pipeline_class = "StableDiffusionInpaintPipeline"
    name = "sd-inpaint"

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {**super().from_pretrained_kwargs(), "safety_checker": None, "requires_safety_checker": False}


def register_diffusers_entry(name: str, cls: type, *, description: str, pipeline: str, supported: Any = True,
                             exclude: Sequence[str] = (), **defaults: Any) -> Any:
    """Register ``cls`` as generator ``name`` with its own default arguments.

    The builder's signature is ``cls.__init__``'s, merged up the class hierarchy through
    ``**kwargs`` forwarding (so ``inspect.signature`` lists every accepted argument, which the
    configuration checks use), minus ``name`` and ``exclude``, with ``defaults`` applied; ``model``
    is the only positional argument. Returns the builder.
    """
    parameters: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters.values()
        for parameter in own:
            if parameter.name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                parameters.setdefault(parameter.name, parameter)
        if not any(parameter.kind == parameter.VAR_KEYWORD for parameter in own):
            break
    for dropped in ("name", *exclude):
        parameters.pop(dropped, None)
    unknown = set(defaults) - set(parameters)
    if unknown:
        raise TypeError(f"{name}: defaults for arguments {cls.__name__} does not take: {sorted(unknown)}")
    signature = inspect.Signature([
        parameter.replace(kind=parameter.POSITIONAL_OR_KEYWORD if key == "model" else parameter.KEYWORD_ONLY,
                          default=defaults.get(key, parameter.default))
        for key, parameter in sorted(parameters.items(), key=lambda item: item[0] != "model")
    ])

    def build(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return cls(**bound.arguments)

    build.__signature__ = signature
    build.__name__ = build.__qualname__ = "build_" + name.replace("-", "_").replace(".", "_")
    build.__doc__ = f"{description}; see ``{cls.__name__}``."
    GENERATORS.register(name, description=description, pipeline=pipeline, supported=supported)(build)
    return build


build_sd_inpaint = register_diffusers_entry(
    "sd-inpaint", StableDiffusionInpaintGenerator, description="SD 1.5 / 2 / 2.1 inpainting (StableDiffusionInpaintPipeline)",
    pipeline="StableDiffusionInpaintPipeline", steps=30, guidance_scale=7.5, resolution=None,
)
