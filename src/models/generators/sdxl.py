"""Adapter to diffusers' ``StableDiffusionXLInpaintPipeline`` (SDXL inpainting), and its LoRA variant.

Checkpoint: ``diffusers/stable-diffusion-xl-1.0-inpainting-0.1`` (9-channel UNet, 1024 px); the
base SDXL checkpoint also works (the pipeline then blends latents, 4-channel UNet).

The LoRA variant (DiffSeg30k's LoRA study: SDXL edits redone with the Hyper-SD 8-step LoRA and a
DDIM sampler, labelled as SDXL) fuses a LoRA file into its own copy of the pipeline. diffusers'
``load_lora_weights`` needs the ``peft`` package, which is not part of this project's pinned
environment, so the fusion is done here: diffusers' own ``lora_state_dict`` reads the file and
converts kohya / A1111 key names, then ``W += scale * alpha / rank * up @ down`` for every
targeted layer. Only safetensors files are read (no pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from .base import GENERATORS
from .diffusion import DiffusersInpaintGenerator, _offline, register_diffusers_entry

_LORA_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


class StableDiffusionXLInpaintGenerator(DiffusersInpaintGenerator):
    """An SDXL inpainting checkpoint (``StableDiffusionXLInpaintPipeline``), 1024 px.

    The SDXL inpainting 0.1 model card asks for ``strength`` below 1 (0.99); see
    ``DiffusersInpaintGenerator`` for the arguments.
    """

    pipeline_class = "StableDiffusionXLInpaintPipeline"
    name = "sdxl-inpaint"


def resolve_lora_file(lora: str, weight_name: str | None = None) -> Path:
    """The local safetensors file of a LoRA given as a file, a folder + ``weight_name``, or a hub
    repo id + ``weight_name`` (read from the local cache only under ``HF_HUB_OFFLINE``).

    Raises:
        ValueError: not a .safetensors file (pickled weights are not read), or a folder / repo
            without ``weight_name``.
        FileNotFoundError: the file does not exist.
    """
    path = Path(lora)
    if path.is_dir() or not path.suffix:
        if not weight_name:
            raise ValueError(f"LoRA {lora!r} is a folder or hub repo: give `lora_weight_name` (the .safetensors file)")
        if path.is_dir():
            path = path / weight_name
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(repo_id=lora, filename=weight_name, local_files_only=_offline()))
    if path.suffix != ".safetensors":
        raise ValueError(f"LoRA weights must be a .safetensors file (pickled weights are not loaded), got {path.name!r}")
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file {path} does not exist")
    return path


def fuse_lora(pipe: Any, path: str | Path, scale: float = 1.0) -> dict[str, int]:
    """Merge the LoRA in safetensors file ``path`` into ``pipe``'s weights, in place.

    ``pipe`` is a diffusers pipeline with a ``lora_state_dict`` class method (SD / SDXL
    families); its UNet and text encoders may be targeted. Each targeted weight becomes
    ``W + scale * (alpha / rank) * (up @ down)`` (alpha = rank when the file has none).

    Returns:
        the number of fused layers per component, e.g. {"unet": 140}.

    Raises:
        ValueError: a key that names no layer of the pipeline, a layer without its up/down pair,
            or a DoRA file (magnitude vectors are not merged here).
    """
    import safetensors.torch
    import torch

    raw = safetensors.torch.load_file(str(path), device="cpu")
    unet_config = getattr(getattr(pipe, "unet", None), "config", None)
    state_dict, alphas = type(pipe).lora_state_dict(raw, unet_config=unet_config)
    alphas = dict(alphas or {})
    if any("magnitude_vector" in key or "dora_scale" in key for key in state_dict):
        raise ValueError(f"{Path(path).name} is a DoRA file; only plain LoRA weights can be fused")
    from diffusers.utils.state_dict_utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft

    by_component: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        component, _, rest = key.partition(".")
        if component not in _LORA_COMPONENTS or getattr(pipe, component, None) is None:
            raise ValueError(f"LoRA key {key!r} targets no component of {type(pipe).__name__}")
        if rest.endswith(".alpha"):
            alphas[key] = float(tensor)
        else:
            by_component.setdefault(component, {})[rest] = tensor
    def to_peft(component: str, weights: dict[str, Any]) -> dict[str, Any]:
        # diffusers' own renaming to peft's lora_A / lora_B (old attn-procs and text-encoder names).
        if component == "unet":
            return convert_unet_state_dict_to_peft(weights)
        if any(".lora_A." in key for key in weights):
            return weights
        return convert_state_dict_to_peft(weights)

    # Alphas come keyed by module ("x.alpha") or by the down weight ("x.to_q_lora.down.weight.alpha"):
    # rename them like a down weight to find their module.
    alpha_of: dict[tuple[str, str], float] = {}
    for key, value in alphas.items():
        component, _, rest = key.removesuffix(".alpha").partition(".")
        probe = rest if rest.endswith(".weight") else f"{rest}.lora.down.weight"
        for renamed in to_peft(component, {probe: None}) if component in by_component else {}:
            alpha_of[(component, renamed.split(".lora_A.")[0])] = float(value)
    pairs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for component, weights in by_component.items():
        weights = to_peft(component, weights)
        for key, tensor in weights.items():
            for part in ("lora_A", "lora_B"):
                if f".{part}." in key:
                    pairs.setdefault((component, key.split(f".{part}.")[0]), {})[part] = tensor
                    break
            else:
                raise ValueError(f"LoRA key {component}.{key} is neither an up nor a down weight")
    fused: dict[str, int] = {}
    for (component, module_name), pair in pairs.items():
        if set(pair) != {"lora_A", "lora_B"}:
            raise ValueError(f"LoRA layer {component}.{module_name} lacks its {'up' if 'lora_B' not in pair else 'down'} weight")
        try:
            module = getattr(pipe, component).get_submodule(module_name)
        except AttributeError as exc:
            raise ValueError(f"LoRA layer {component}.{module_name} names no layer of the {component}") from exc
        down, up = pair["lora_A"].float(), pair["lora_B"].float()
        rank = down.shape[0]
        alpha = alpha_of.get((component, module_name), rank)
        weight = module.weight
        delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
        with torch.no_grad():
            weight.add_((float(scale) * float(alpha) / rank * delta).to(weight.device, weight.dtype))
        fused[component] = fused.get(component, 0) + 1
    if not fused:
        raise ValueError(f"{Path(path).name} holds no LoRA layer")
    return fused


class StableDiffusionXLLoraInpaintGenerator(StableDiffusionXLInpaintGenerator):
    """SDXL inpainting with a LoRA fused in and (by default) DDIM with trailing timesteps, the
    Hyper-SD recipe. Its class label is its parent's: configure it with ``label: sdxl``.

    Args:
        lora: a .safetensors file, a folder, or a hub repo id (e.g. "ByteDance/Hyper-SD").
        lora_weight_name: the file inside ``lora`` when it is a folder or repo
            (e.g. "Hyper-SDXL-8steps-lora.safetensors").
        lora_scale: multiplier of the LoRA update (1.0 = as trained).
        other arguments: see ``DiffusersInpaintGenerator``.

    The fused pipeline is its own cache entry (LoRA and scheduler are part of the key): the
    parent SDXL generator, if also configured, keeps its unmodified weights.
    """

    name = "sdxl-inpaint-lora"

    def __init__(self, model: str, lora: str, lora_weight_name: str | None = None, lora_scale: float = 1.0,
                 **kwargs: Any):
        super().__init__(model, **kwargs)
        self.lora = str(lora)
        self.lora_weight_name = lora_weight_name
        self.lora_scale = float(lora_scale)
        self.lora_file = resolve_lora_file(self.lora, lora_weight_name)  # fail at build time, not mid-run

    def load_options(self) -> dict[str, Any]:
        return {**super().load_options(), "lora": str(self.lora_file.resolve()), "lora_scale": self.lora_scale}

    def prepare(self, pipe: Any) -> None:
        super().prepare(pipe)
        self.fused_layers = fuse_lora(pipe, self.lora_file, self.lora_scale)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "lora": self.lora, "lora_weight_name": self.lora_weight_name or "",
                "lora_scale": self.lora_scale}


build_sdxl_inpaint = register_diffusers_entry(
    "sdxl-inpaint", StableDiffusionXLInpaintGenerator,
    description="SDXL inpainting (StableDiffusionXLInpaintPipeline)", pipeline="StableDiffusionXLInpaintPipeline",
    guidance_scale=8.0, resolution=1024, strength=0.99,
)


@GENERATORS.register("sdxl-inpaint-lora", description="SDXL inpainting + a fused LoRA (e.g. Hyper-SD 8-step) + DDIM",
                     pipeline="StableDiffusionXLInpaintPipeline", supported=True)
def build_sdxl_inpaint_lora(
    model: str,
    lora: str,
    lora_weight_name: str | None = None,
    lora_scale: float = 1.0,
    steps: int = 8,
    guidance_scale: float = 0.0,
    resolution: int | None = 1024,
    device: str = "cpu",
    dtype: str = "float32",
    negative_prompt: str | None = None,
    strength: float = 0.99,
    max_batch: int = 4,
    scheduler: str | None = "DDIMScheduler",
    scheduler_kwargs: dict[str, Any] | None = None,
    variant: str | None = None,
) -> StableDiffusionXLLoraInpaintGenerator:
    """SDXL inpainting with a LoRA; Hyper-SD's defaults: 8 steps, no CFG, DDIM "trailing"."""
    if scheduler_kwargs is None and scheduler == "DDIMScheduler":
        scheduler_kwargs = {"timestep_spacing": "trailing"}
    return StableDiffusionXLLoraInpaintGenerator(
        model, lora=lora, lora_weight_name=lora_weight_name, lora_scale=lora_scale, steps=steps,
        guidance_scale=guidance_scale, resolution=resolution, device=device, dtype=dtype,
        negative_prompt=negative_prompt, strength=strength, max_batch=max_batch, scheduler=scheduler,
        scheduler_kwargs=scheduler_kwargs, variant=variant,
    )
