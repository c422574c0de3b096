"""Where BrushNet's features meet a diffusers UNet: the residuals it produces and the UNet modules
whose outputs they join. Shared by the branch (``brushnet_model``) and the hooks and pipeline
(``brushnet``), so neither imports the other's module for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class BrushNetResiduals:
    """The branch's zero-conv outputs, in the order the UNet consumes them: ``down`` (after
    ``conv_in``, then after each down pair / downsampler), ``mid`` (after the mid block) and ``up``
    (after each up pair / upsampler). Each is (N, C_i, h_i, w_i) like the UNet feature it joins."""

    down: list[Any]
    mid: Any
    up: list[Any]


def _pair_outputs(block: Any) -> list[Any]:
    """The modules whose outputs are one 'pair' result of a diffusers block: the attention of a
    (resnet, attention) pair where the block has attentions, else the resnet."""
    attentions = getattr(block, "attentions", None)
    if attentions is not None and len(attentions) == len(block.resnets) and all(a is not None for a in attentions):
        return list(attentions)
    return list(block.resnets)


def _first_tensor(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def _with_added(output: Any, residual: Any) -> Any:
    if isinstance(output, tuple):  # Transformer2DModel with return_dict=False
        return (output[0] + residual, *output[1:])
    return output + residual


def _down_points(unet: Any) -> list[Any]:
    points = []
    for block in unet.down_blocks:
        points += _pair_outputs(block)
        if block.downsamplers is not None:
            points.append(block.downsamplers[0])
    return points


def _up_points(block: Any) -> list[Any]:
    points = _pair_outputs(block)
    if block.upsamplers is not None:
        points.append(block.upsamplers[0])
    return points


def _call_block(block: Any, hidden_states: Any, temb: Any, encoder_hidden_states: Any, **extra: Any) -> Any:
    if getattr(block, "has_cross_attention", False):
        return block(hidden_states=hidden_states, temb=temb, encoder_hidden_states=encoder_hidden_states, **extra)
    return block(hidden_states=hidden_states, temb=temb, **extra)
