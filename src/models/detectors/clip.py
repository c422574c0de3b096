"""CLIP for the detectors that build on it (MaskCLIP, UniversalFakeDet): load from a local folder
or a Hugging Face id already in the local cache, or build from a config at random init.

Nothing is downloaded: ``from_pretrained`` runs with ``local_files_only`` whenever
``HF_HUB_OFFLINE`` is set (the Makefile and tests set it), and a missing model is an error naming
what was asked for, never a silent fallback. Without ``clip_model`` the architecture comes from
``clip_config`` (default: OpenAI ViT-L/14, the seeds' choice) with random weights, only when the
caller says so (``random_init=True``): the CLIP is frozen, so random weights are otherwise an error.

The loaded architecture is returned as a plain dict so the detector's config records it and a
checkpoint rebuilds without the original folder.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

# openai/clip-vit-large-patch14: the CLIP both seeds use (MaskCLIP, UniversalFakeDet).
VIT_L_14: dict[str, Any] = {
    "projection_dim": 768,
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
                    "max_position_embeddings": 77, "vocab_size": 49408, "bos_token_id": 49406, "eos_token_id": 49407,
                    "projection_dim": 768, "hidden_act": "quick_gelu"},
    "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "image_size": 224, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu"},
}

# CLIP's own input normalisation (not ImageNet's).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _from_pretrained(cls, clip_model: str, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(clip_model, local_files_only=_offline() or os.path.isdir(clip_model), **kwargs)
    except OSError as exc:
        raise FileNotFoundError(
            f"CLIP model {clip_model!r} is neither a local folder nor in the local Hugging Face cache "
            f"(nothing is downloaded; HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')!r}): {exc}"
        ) from exc


def load_clip(
    clip_model: str | None, clip_config: dict[str, Any] | None, *, detector: str, rebuild_only: bool = False,
    random_init: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """A full CLIP (vision + text towers), frozen, and its architecture as a dict.

    Args:
        clip_model: local folder or cached hub id, or None.
        clip_config: ``CLIPConfig`` fields (``text_config``, ``vision_config``,
            ``projection_dim``, ...); used when ``clip_model`` is None or ``rebuild_only``.
            None: ViT-L/14.
        random_init: with ``clip_model`` None, a RANDOM frozen CLIP is meant (tests, ablations);
            without it that is an error (a frozen random encoder trains on random features).
        rebuild_only: build from ``clip_config`` without reading ``clip_model`` (a state dict
            with every weight follows; used when a checkpoint is loaded).
    Returns:
        (``transformers.CLIPModel`` with requires_grad False, config dict to record).
    """
    from transformers import CLIPConfig, CLIPModel

    if clip_model is not None and not (rebuild_only and clip_config is not None):
        model = _from_pretrained(CLIPModel, clip_model)
        logger.info("detector %r: loaded CLIP from %s", detector, clip_model)
    else:
        config = CLIPConfig(**copy.deepcopy(clip_config or VIT_L_14))
        model = CLIPModel(config)
        _refuse_random_frozen(detector, rebuild_only, random_init)
    model.requires_grad_(False)
    return model.eval(), _config_dict(model.config)


def load_clip_vision(
    clip_model: str | None, clip_config: dict[str, Any] | None, *, detector: str, rebuild_only: bool = False,
    random_init: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """CLIP's vision tower with its projection (``CLIPVisionModelWithProjection``), frozen.

    ``clip_config`` may be a full CLIP config (its ``vision_config`` and ``projection_dim`` are
    used) or a vision config. Same loading rules as ``load_clip``; a full CLIP checkpoint folder
    loads (its text tower is skipped).
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if clip_model is not None and not (rebuild_only and clip_config is not None):
        model = _from_pretrained(CLIPVisionModelWithProjection, clip_model, config=_vision_config(clip_model))
        logger.info("detector %r: loaded CLIP vision tower from %s", detector, clip_model)
    else:
        fields = copy.deepcopy(clip_config or VIT_L_14)
        if "vision_config" in fields:
            fields = {**fields["vision_config"], "projection_dim": fields.get("projection_dim", 512)}
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**fields))
        _refuse_random_frozen(detector, rebuild_only, random_init)
    model.requires_grad_(False)
    return model.eval(), _config_dict(model.config)


def _refuse_random_frozen(detector: str, rebuild_only: bool, random_init: bool) -> None:
    """A frozen CLIP never learns: random weights there are a mistake unless explicitly meant."""
    if rebuild_only:
        return
    if not random_init:
        raise ValueError(f"detector {detector!r}: clip_model is None, so its FROZEN CLIP would keep random weights; "
                         "pass clip_model (a local folder or a hub id in the local cache, e.g. "
                         "openai/clip-vit-large-patch14) or random_init=True if random weights are meant")
    logger.warning("detector %r: random_init=True, the frozen CLIP keeps random weights", detector)


def _vision_config(clip_model: str) -> Any:
    """The vision config of a full CLIP or vision-only checkpoint; for a full CLIP the projection
    width is the top-level ``projection_dim`` (the vision part's own field may be a stale default)."""
    from transformers import CLIPConfig, CLIPVisionConfig

    config = _from_pretrained(CLIPVisionConfig, clip_model)
    try:
        full = _from_pretrained(CLIPConfig, clip_model)
    except FileNotFoundError:
        return config
    if getattr(full, "model_type", None) == "clip":
        config.projection_dim = full.projection_dim
    return config


def _config_dict(config: Any) -> dict[str, Any]:
    """The config's non-default fields as JSON-safe data (enough to rebuild the architecture)."""
    fields = config.to_diff_dict()
    for key in ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype"):
        fields.pop(key, None)
    for sub in ("text_config", "vision_config"):
        if isinstance(fields.get(sub), dict):
            for key in ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype"):
                fields[sub].pop(key, None)
    return fields


def clip_vision_layers(vision_model: nn.Module, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """Hidden states (B, 1 + N, D) after each encoder layer of a ``CLIPVisionTransformer``
    (token 0 is [CLS]), run layer by layer so no ``output_hidden_states`` plumbing is needed."""
    hidden = vision_model.pre_layrnorm(vision_model.embeddings(pixel_values))
    states = []
    for layer in vision_model.encoder.layers:
        hidden = layer(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        states.append(hidden)
    return states


class FrozenModule(nn.Module):
    """Holds a frozen module: excluded from gradients, kept in eval mode (dropout and any
    normalisation statistics fixed) even when the detector around it trains."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> FrozenModule:
        super().train(mode)
        self.module.eval()
        return self
