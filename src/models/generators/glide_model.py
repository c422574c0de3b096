"""GLIDE's networks (Nichol et al., 2021), written here with the parameter names of OpenAI's
published checkpoints (``base_inpaint.pt``, ``upsample_inpaint.pt``: "GLIDE (filtered)").

GLIDE is a text-conditional ADM UNet (Dhariwal & Nichol, 2021): a BPE text transformer whose
last token, projected, is added to the timestep embedding, and whose every token is projected
into the keys and values of each UNet attention block (GLIDE paper, section 3 and appendix A).
The inpainting variants take 4 extra input channels (masked image, keep-mask; paper section 3.3),
the upsampler 3 more (the bilinearly upsampled 64 px sample). The paper is silent on the exact
layout, so this module follows OpenAI's code (github.com/openai/glide-text2im, ``unet.py``,
``text2im_model.py``, ``xf.py``, ``nn.py``, ``model_creation.py``), read and re-written, not
copied: module names and nesting are those of that code so ``load_state_dict(strict=True)``
takes the published files as they are.

Conventions kept from that code because the weights depend on them: every GroupNorm has 32
groups and runs in float32; attention heads are 64 channels wide; the text transformer has no
causal mask, pads with a learned padding embedding and its ``c_qkv`` output is laid out per head
as [q, k, v]; the UNet attention's ``qkv`` is laid out per head as [q, k, v] and the text keys and
values (``encoder_kv``) are put in front of the image ones; the output has 6 channels (epsilon
and the learned-variance interpolation factor). ``use_fp16`` in OpenAI's notebooks converts the
convolutions of the UNet torso and the text transformer to float16: ``to_fp16`` does the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GlideConfig:
    """Hyper-parameters of one GLIDE network; the defaults are ``base_inpaint.pt``'s
    (``model_and_diffusion_defaults()`` with ``inpaint=True`` in OpenAI's ``model_creation.py``).

    ``attention_resolutions`` are feature-map sizes (pixels at ``image_size``) where attention
    runs; ``channel_mult`` gives one UNet level each; ``n_vocab`` is the tokenizer's vocabulary
    (GPT-2's BPE: 50257). ``norm_groups`` is 32 in every published model (tiny test models may
    lower it together with the widths).
    """

    image_size: int = 64
    model_channels: int = 192
    num_res_blocks: int = 3
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 64
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    text_ctx: int = 128
    xf_width: int = 512
    xf_layers: int = 16
    xf_heads: int = 8
    xf_final_ln: bool = True
    xf_padding: bool = True
    n_vocab: int = 50257
    inpaint: bool = True
    super_res: bool = False
    norm_groups: int = 32

    @property
    def in_channels(self) -> int:
        # x, then masked image + keep-mask (inpaint), then the upsampled low-res image (super_res)
        return 3 + (4 if self.inpaint else 0) + (3 if self.super_res else 0)

    def with_overrides(self, overrides: dict | None) -> GlideConfig:
        """A copy with ``overrides`` applied; raises ValueError naming unknown keys."""
        if not overrides:
            return self
        known = set(self.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown GLIDE config keys {unknown}; known: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return replace(self, **values)


def base_inpaint_config() -> GlideConfig:
    """``base_inpaint.pt``: 64 px, 192 channels, levels (1, 2, 3, 4), 3 res blocks per level."""
    return GlideConfig()


def upsample_inpaint_config() -> GlideConfig:
    """``upsample_inpaint.pt``: ``model_and_diffusion_defaults_upsampler()`` with ``inpaint=True``:
    256 px, 2 res blocks per level, levels (1, 1, 2, 2, 4, 4) (the code's default for 256)."""
    return GlideConfig(image_size=256, num_res_blocks=2, channel_mult=(1, 1, 2, 2, 4, 4), super_res=True)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (fp16-safe), optionally followed by SiLU."""

    def __init__(self, channels: int, groups: int, silu: bool):
        super().__init__(num_groups=groups, num_channels=channels)
        self.silu = silu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x.float()).to(x.dtype)
        return F.silu(y) if self.silu else y


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32, returned in the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) sinusoidal embedding, cosines first then sines (ADM's order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * freqs[None]
    out = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(out, (0, dim % 2))


class ResBlock(nn.Module):
    """ADM residual block with FiLM (scale-shift) conditioning; ``resample`` "up" / "down" makes
    it BigGAN-style up- or down-sampling (nearest / 2x2 average, no parameters)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int,
                 scale_shift: bool = True, resample: str | None = None):
        super().__init__()
        self.scale_shift = scale_shift
        self.resample = resample
        # Sequential indices are part of the checkpoint's names (in_layers.2, out_layers.3, ...).
        self.in_layers = nn.Sequential(GroupNorm32(channels, groups, silu=True), nn.Identity(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels * (2 if scale_shift else 1)))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels, groups, silu=not scale_shift),
                                        nn.SiLU() if scale_shift else nn.Identity(), nn.Dropout(0.0),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm_act, conv = self.in_layers[:-1], self.in_layers[-1]
        h = conv(self._resample(norm_act(x)))
        x = self._resample(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.scale_shift:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the pixels, with the text tokens' keys and values prepended."""

    def __init__(self, channels: int, head_channels: int, encoder_channels: int | None, groups: int):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"attention channels {channels} not divisible by head width {head_channels}")
        self.heads = channels // head_channels
        self.norm = GroupNorm32(channels, groups, silu=False)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        if encoder_channels is not None:
            self.encoder_kv = nn.Conv1d(encoder_channels, channels * 2, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))
        q, k, v = qkv.reshape(b * self.heads, 3 * c // self.heads, -1).chunk(3, dim=1)
        if context is not None and hasattr(self, "encoder_kv"):
            ek, ev = self.encoder_kv(context).reshape(b * self.heads, 2 * c // self.heads, -1).chunk(2, dim=1)
            k, v = torch.cat([ek, k], dim=-1), torch.cat([ev, v], dim=-1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = self.proj_out(out.transpose(1, 2).reshape(b, c, -1))
        return x + h.reshape(b, c, *spatial)


class Downsample(nn.Module):
    """Strided 3x3 convolution (used when ``resblock_updown`` is False)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 convolution (used when ``resblock_updown`` is False)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConditionedSequential(nn.Sequential):
    """Passes the timestep embedding to res blocks and the text tokens to attention blocks."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, AttentionBlock):
                h = layer(h, context)
            else:
                h = layer(h)
        return h


class TextAttention(nn.Module):
    """Bidirectional multi-head self-attention; ``c_qkv`` is laid out per head as [q, k, v]."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, width * 3)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, width = x.shape
        qkv = self.c_qkv(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(1, 2).reshape(b, n, width))


class TextMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.c_proj = nn.Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class TextBlock(nn.Module):
    """Pre-norm transformer block (CLIP's text-encoder layout)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = TextAttention(width, heads)
        self.ln_1 = LayerNorm32(width)
        self.mlp = TextMLP(width)
        self.ln_2 = LayerNorm32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([TextBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class GlideUNet(nn.Module):
    """A text-conditional GLIDE UNet (base, inpaint, upsampler or inpainting upsampler by config).

    ``forward(x, timesteps, text, inpaint_image, inpaint_mask, low_res)``:
        x: (N, 3, H, W) noisy image in [-1, 1] scale; timesteps: (N,) indices of the 1000-step
        process (float or int); text: ``encode_text``'s output for N prompts;
        inpaint_image: (N, 3, H, W) the known image; inpaint_mask: (N, 1, H, W), 1 = KEEP the
        known pixel, 0 = fill (GLIDE's convention); low_res: (N, 3, h, w) the lower-resolution
        sample (super_res configs only), bilinearly resized to (H, W).
    Returns (N, 6, H, W) float: epsilon, then the variance interpolation values in [-1, 1].
    H and W must be multiples of 2 ** (len(channel_mult) - 1).
    """

    def __init__(self, config: GlideConfig):
        super().__init__()
        self.config = config
        cfg = config
        ch0 = cfg.model_channels
        emb_dim = ch0 * 4
        groups = cfg.norm_groups
        self.torso_dtype = torch.float32
        self.time_embed = nn.Sequential(nn.Linear(ch0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        attention_ds = {cfg.image_size // r for r in cfg.attention_resolutions}

        def res(cin: int, cout: int, resample: str | None = None) -> ResBlock:
            return ResBlock(cin, emb_dim, cout, groups, cfg.use_scale_shift_norm, resample)

        def attn(channels: int) -> AttentionBlock:
            return AttentionBlock(channels, cfg.num_head_channels, cfg.xf_width or None, groups)

        ch = int(cfg.channel_mult[0] * ch0)
        self.input_blocks = nn.ModuleList([ConditionedSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        ds = 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * ch0))]
                ch = int(mult * ch0)
                if ds in attention_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(ConditionedSequential(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = res(ch, ch, "down") if cfg.resblock_updown else Downsample(ch)
                self.input_blocks.append(ConditionedSequential(down))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = ConditionedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), int(mult * ch0))]
                ch = int(mult * ch0)
                if ds in attention_ds:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, "up") if cfg.resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(ConditionedSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch, groups, silu=True), nn.Identity(), nn.Conv2d(ch, 6, 3, padding=1))

        if cfg.xf_width:
            self.transformer = TextTransformer(cfg.xf_width, cfg.xf_layers, cfg.xf_heads)
            if cfg.xf_final_ln:
                self.final_ln = LayerNorm32(cfg.xf_width)
            self.token_embedding = nn.Embedding(cfg.n_vocab, cfg.xf_width)
            self.positional_embedding = nn.Parameter(torch.empty(cfg.text_ctx, cfg.xf_width))
            self.transformer_proj = nn.Linear(cfg.xf_width, emb_dim)
            if cfg.xf_padding:
                self.padding_embedding = nn.Parameter(torch.empty(cfg.text_ctx, cfg.xf_width))
            nn.init.normal_(self.positional_embedding, std=0.01)
            if cfg.xf_padding:
                nn.init.normal_(self.padding_embedding, std=0.01)

    def to_fp16(self) -> GlideUNet:
        """Convert the torso's convolutions and the text transformer to float16, as OpenAI's
        ``convert_to_fp16`` does (norms, embeddings of time, output layer stay float32)."""
        for part in (self.input_blocks, self.middle_block, self.output_blocks):
            for module in part.modules():
                if isinstance(module, nn.Conv1d | nn.Conv2d):
                    module.half()
        if self.config.xf_width:
            for module in self.transformer.modules():
                if isinstance(module, nn.Linear):
                    module.half()
            self.transformer_proj.half()
            self.token_embedding.half()
        self.torso_dtype = torch.float16
        return self

    def encode_text(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, text_ctx) int64 tokens and bool mask (True = a real token) -> (xf_proj (N, 4C),
        xf_out (N, xf_width, text_ctx)); computed once per sampling run (the text is fixed)."""
        if tokens.shape[-1] != self.config.text_ctx:
            raise ValueError(f"tokens must have {self.config.text_ctx} positions, got {tokens.shape[-1]}")
        xf_in = self.token_embedding(tokens.long()) + self.positional_embedding[None]
        if self.config.xf_padding:
            xf_in = torch.where(token_mask[..., None], xf_in, self.padding_embedding[None])
        xf_out = self.transformer(xf_in.to(self.torso_dtype))
        if self.config.xf_final_ln:
            xf_out = self.final_ln(xf_out)
        xf_proj = self.transformer_proj(xf_out[:, -1])  # the last position summarises the prompt
        return xf_proj, xf_out.permute(0, 2, 1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, text: tuple[torch.Tensor, torch.Tensor],
                inpaint_image: torch.Tensor | None = None, inpaint_mask: torch.Tensor | None = None,
                low_res: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        parts = [x]
        if cfg.inpaint:
            if inpaint_image is None or inpaint_mask is None:
                raise ValueError("an inpainting GLIDE model needs inpaint_image and inpaint_mask")
            parts += [inpaint_image * inpaint_mask, inpaint_mask]
        if cfg.super_res:
            if low_res is None:
                raise ValueError("an upsampling GLIDE model needs low_res")
            parts.append(F.interpolate(low_res, x.shape[-2:], mode="bilinear", align_corners=False))
        xf_proj, xf_out = text
        emb = self.time_embed(timestep_embedding(timesteps, cfg.model_channels))
        emb = emb + xf_proj.to(emb.dtype)
        h = torch.cat(parts, dim=1).to(self.torso_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, xf_out)
            skips.append(h)
        h = self.middle_block(h, emb, xf_out)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, xf_out)
        return self.out(h.to(x.dtype))
