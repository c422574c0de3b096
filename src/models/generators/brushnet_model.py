"""``BrushNetModel``: the BrushNet branch with the authors' config keys and parameter names.

Its own module because subclassing diffusers' ``ModelMixin`` imports diffusers (seconds on CPU);
``models.generators.brushnet`` imports it only when a BrushNet pipeline is built. See that
module's docstring for the model and the sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from .brushnet_blocks import BrushNetResiduals, _call_block, _first_tensor, _up_points


class BrushNetModel(ModelMixin, ConfigMixin):
    """The BrushNet branch, with the authors' config keys and parameter names.

    ``forward(sample, timestep, encoder_hidden_states, brushnet_cond, conditioning_scale)``:
    ``sample`` (N, in_channels, h, w) noisy latents, ``brushnet_cond`` (N, conditioning_channels,
    h, w) = masked-image latents (scaled like the UNet's) + the latent-size mask with 1 = KEEP,
    0 = hole (the authors' convention), ``encoder_hidden_states`` (N, L, cross_attention_dim)
    (unused by the SD 1.5 BrushNet, whose blocks have no attention). Returns ``BrushNetResiduals``
    scaled by ``conditioning_scale``.

    The published SD 1.5 checkpoints use ``DownBlock2D`` / ``MidBlock2D`` / ``UpBlock2D`` (no
    attention); PowerPaint v2's branch uses the cross-attention variants. ``MidBlock2D`` (a block
    of two resnets in the authors' fork) is built as diffusers' ``UNetMidBlock2D`` without
    attention, which has the same parameters.

    Raises:
        ValueError: a config this implementation does not run (SDXL's class / addition embeddings,
            an encoder projection, pooled conditions) or inconsistent block lists.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        conditioning_channels: int = 5,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        down_block_types: Sequence[str] = ("DownBlock2D",) * 4,
        mid_block_type: str | None = "MidBlock2D",
        up_block_types: Sequence[str] = ("UpBlock2D",) * 4,
        only_cross_attention: bool | Sequence[bool] = False,
        block_out_channels: Sequence[int] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1280,
        transformer_layers_per_block: int | Sequence[int] = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        attention_head_dim: int | Sequence[int] = 8,
        num_attention_heads: int | Sequence[int] | None = None,
        use_linear_projection: bool = False,
        class_embed_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        num_class_embeds: int | None = None,
        upcast_attention: bool = False,
        resnet_time_scale_shift: str = "default",
        projection_class_embeddings_input_dim: int | None = None,
        brushnet_conditioning_channel_order: str = "rgb",
        conditioning_embedding_out_channels: Sequence[int] | None = (16, 32, 96, 256),
        global_pool_conditions: bool = False,
        addition_embed_type_num_heads: int = 64,
    ):
        import torch
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps
        from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, get_down_block, get_mid_block, get_up_block

        super().__init__()
        unsupported = {"class_embed_type": class_embed_type, "num_class_embeds": num_class_embeds,
                       "encoder_hid_dim": encoder_hid_dim, "encoder_hid_dim_type": encoder_hid_dim_type}
        unsupported = {key: value for key, value in unsupported.items() if value is not None}
        if addition_embed_type not in (None, "text_time"):
            unsupported["addition_embed_type"] = addition_embed_type
        if global_pool_conditions:
            unsupported["global_pool_conditions"] = True
        if unsupported:
            raise ValueError(f"BrushNetModel: config options {unsupported} are not supported (SD 1.5 / SDXL "
                             "BrushNet and PowerPaint v2 only)")
        levels = len(down_block_types)
        if len(up_block_types) != levels or len(block_out_channels) != levels:
            raise ValueError(f"BrushNetModel: down_block_types ({levels}), up_block_types ({len(up_block_types)}) "
                             f"and block_out_channels ({len(block_out_channels)}) must have the same length")
        # diffusers' old naming: attention_head_dim really is the number of heads when the latter is unset.
        num_attention_heads = num_attention_heads or attention_head_dim
        per_level = lambda value: list(value) if isinstance(value, (list, tuple)) else [value] * levels  # noqa: E731
        heads, head_dims = per_level(num_attention_heads), per_level(attention_head_dim)
        cross_only, layers = per_level(only_cross_attention), per_level(transformer_layers_per_block)

        def zero_conv(channels: int) -> Any:
            conv = torch.nn.Conv2d(channels, channels, kernel_size=1)
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
            return conv

        self.conv_in_condition = torch.nn.Conv2d(in_channels + conditioning_channels, block_out_channels[0],
                                                 kernel_size=3, padding=1)
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], time_embed_dim, act_fn=act_fn)
        if addition_embed_type == "text_time":  # SDXL: pooled text + size / crop ids, as its UNet
            if addition_time_embed_dim is None or projection_class_embeddings_input_dim is None:
                raise ValueError("BrushNetModel: addition_embed_type 'text_time' needs addition_time_embed_dim and "
                                 "projection_class_embeddings_input_dim")
            self.add_time_proj = Timesteps(addition_time_embed_dim, flip_sin_to_cos, freq_shift)
            self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)
        common = dict(temb_channels=time_embed_dim, resnet_eps=norm_eps, resnet_act_fn=act_fn,
                      resnet_groups=norm_num_groups, cross_attention_dim=cross_attention_dim,
                      use_linear_projection=use_linear_projection, upcast_attention=upcast_attention,
                      resnet_time_scale_shift=resnet_time_scale_shift)

        self.down_blocks = torch.nn.ModuleList()
        self.brushnet_down_blocks = torch.nn.ModuleList([zero_conv(block_out_channels[0])])
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            is_final = i == levels - 1
            self.down_blocks.append(get_down_block(
                block_type, num_layers=layers_per_block, transformer_layers_per_block=layers[i],
                in_channels=input_channel, out_channels=output_channel, add_downsample=not is_final,
                num_attention_heads=heads[i], attention_head_dim=head_dims[i] or output_channel,
                downsample_padding=downsample_padding, only_cross_attention=cross_only[i], **common))
            for _ in range(layers_per_block + (0 if is_final else 1)):
                self.brushnet_down_blocks.append(zero_conv(output_channel))

        mid_channels = block_out_channels[-1]
        self.brushnet_mid_block = zero_conv(mid_channels)
        if mid_block_type == "MidBlock2D":
            self.mid_block = UNetMidBlock2D(
                in_channels=mid_channels, temb_channels=time_embed_dim, resnet_eps=norm_eps, resnet_act_fn=act_fn,
                output_scale_factor=mid_block_scale_factor, resnet_time_scale_shift=resnet_time_scale_shift,
                resnet_groups=norm_num_groups, add_attention=False)
        else:
            self.mid_block = get_mid_block(
                mid_block_type, transformer_layers_per_block=layers[-1], in_channels=mid_channels,
                output_scale_factor=mid_block_scale_factor, num_attention_heads=heads[-1],
                **{k: v for k, v in common.items()})

        self.up_blocks = torch.nn.ModuleList()
        self.brushnet_up_blocks = torch.nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        reversed_heads, reversed_layers = list(reversed(heads)), list(reversed(layers))
        reversed_cross_only = list(reversed(cross_only))
        output_channel = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            is_final = i == levels - 1
            prev_output_channel, output_channel = output_channel, reversed_channels[i]
            input_channel = reversed_channels[min(i + 1, levels - 1)]
            self.up_blocks.append(get_up_block(
                block_type, num_layers=layers_per_block + 1, transformer_layers_per_block=reversed_layers[i],
                in_channels=input_channel, out_channels=output_channel, prev_output_channel=prev_output_channel,
                add_upsample=not is_final, resolution_idx=i, num_attention_heads=reversed_heads[i],
                only_cross_attention=reversed_cross_only[i],
                # The authors index attention_head_dim without reversing; it only names head sizes.
                attention_head_dim=head_dims[i] or output_channel, **common))
            for _ in range(layers_per_block + 1 + (0 if is_final else 1)):
                self.brushnet_up_blocks.append(zero_conv(output_channel))

    def forward(self, sample: Any, timestep: Any, encoder_hidden_states: Any, brushnet_cond: Any,
                conditioning_scale: float = 1.0, added_cond_kwargs: dict[str, Any] | None = None) -> BrushNetResiduals:
        import torch

        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.reshape(-1).expand(sample.shape[0]) if timesteps.numel() == 1 else timesteps
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=sample.dtype))
        if self.config.addition_embed_type == "text_time":
            if not added_cond_kwargs or {"text_embeds", "time_ids"} - set(added_cond_kwargs):
                raise ValueError("an SDXL BrushNet needs added_cond_kwargs with text_embeds and time_ids")
            text_embeds, time_ids = added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]
            time_embeds = self.add_time_proj(time_ids.flatten()).reshape(text_embeds.shape[0], -1)
            emb = emb + self.add_embedding(torch.cat([text_embeds, time_embeds], dim=-1).to(emb.dtype))
        hidden = self.conv_in_condition(torch.cat([sample, brushnet_cond], dim=1))
        down_states = [hidden]
        for block in self.down_blocks:
            hidden, states = _call_block(block, hidden, emb, encoder_hidden_states)
            down_states += list(states)
        hidden = _call_block(self.mid_block, hidden, emb, encoder_hidden_states) if getattr(
            self.mid_block, "has_cross_attention", False) else self.mid_block(hidden, emb)
        mid_state = hidden

        up_states: list[Any] = []
        skips = list(down_states)
        for i, block in enumerate(self.up_blocks):
            res = tuple(skips[-len(block.resnets):])
            skips = skips[:-len(block.resnets)]
            size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
            captured: list[Any] = []
            handles = [point.register_forward_hook(lambda _m, _i, out: captured.append(_first_tensor(out)))
                       for point in _up_points(block)]
            try:
                hidden = _call_block(block, hidden, emb, encoder_hidden_states, res_hidden_states_tuple=res,
                                     upsample_size=size)
            finally:
                for handle in handles:
                    handle.remove()
            up_states += captured

        scale = float(conditioning_scale)
        return BrushNetResiduals(
            down=[conv(state) * scale for conv, state in zip(self.brushnet_down_blocks, down_states, strict=True)],
            mid=self.brushnet_mid_block(mid_state) * scale,
            up=[conv(state) * scale for conv, state in zip(self.brushnet_up_blocks, up_states, strict=True)],
        )

    @classmethod
    def from_unet_config(cls, unet_config: Any, cross_attention: bool = True, conditioning_channels: int = 5) -> Any:
        """A branch shaped after a UNet's config: PowerPaint v2's ``BrushNet_CA`` when
        ``cross_attention`` (the authors build it this way and ship only the weights), else the
        attention-free SD 1.5 BrushNet. Weights are freshly initialised (zero convs at zero)."""
        levels = len(unet_config.block_out_channels)
        if cross_attention:
            blocks = dict(down_block_types=["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"],
                          mid_block_type="UNetMidBlock2DCrossAttn",
                          up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1))
        else:
            blocks = dict(down_block_types=["DownBlock2D"] * levels, mid_block_type="MidBlock2D",
                          up_block_types=["UpBlock2D"] * levels)
        keys = ("in_channels", "flip_sin_to_cos", "freq_shift", "only_cross_attention", "block_out_channels",
                "layers_per_block", "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_num_groups",
                "norm_eps", "cross_attention_dim", "transformer_layers_per_block", "attention_head_dim",
                "num_attention_heads", "use_linear_projection", "upcast_attention", "resnet_time_scale_shift",
                "addition_embed_type", "addition_time_embed_dim", "projection_class_embeddings_input_dim")
        return cls(conditioning_channels=conditioning_channels, **blocks,
                   **{key: getattr(unet_config, key) for key in keys if hasattr(unet_config, key)})
