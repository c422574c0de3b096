"""MaskCLIP (OpenSDI, section 4): frozen CLIP (vision + text) synergised with an MAE ViT encoder
through prompting and attending, for image-level detection and pixel-level localisation.

Structure, following the paper's text:

- Prompting: class-specific learnable context vectors V_c (M x D_text, M = 10) for
  c in {real, fake} are fed through the FROZEN CLIP text encoder as [SOS] V_c [EOS]; the EOS
  state, projected, is the class embedding t_c (CoOp-style; gradients reach V_c through the
  frozen encoder).
- The frozen CLIP vision encoder sees the image resized to its own resolution (224 for
  ViT-L/14) with CLIP's normalisation.
- VCA (visual cross-attention, eq. 1) at several MAE layers l: the CLIP patch tokens of the
  matching CLIP layer are reshaped to their grid, bilinearly resized to the MAE grid, projected
  D -> D_m by a 1x1 conv and used as queries; the MAE tokens give keys and values; multi-head
  attention; residual V_m^{l+1} = V_m^l + G^l.
- VSA (visual self-attention): multi-head self-attention over the [CLS] tokens of several CLIP
  layers, global average pooling, a linear projection -> image representation g; the image
  logits are CLIP-style cosine similarities of g with every t_c (times CLIP's logit scale), and
  the image loss is cross-entropy over them.
- FPN decoder on the MAE encoder's last features at scales 0.5x, 2x, 4x (3x3 conv each),
  resized to one size and concatenated -> F.
- TVCA (textual-visual cross-attention): F projected to the text-embedding width; the class
  embeddings t_c are queries, F gives keys and values; a 1x1 conv produces the mask logits
  (M_real, M_fake).
- Loss = CE(image) + BCE(mask) + edge-weighted BCE(mask), all weights 1 (section 4).
- Section 5: CLIP ViT-L/14 at 224 px (any CLIP checkpoint through transformers), the MAE
  encoder from ImageNet ViT-B/32 weights, prompt length M = 10.

Choices the paper leaves open or that differ, stated so nobody hunts for them:

- TVCA's "attention feature map F'" is read as: the text queries refined by attending to F,
  t'_c = t_c + MHA(t_c, F, F), then F'_c(p) = <F(p), t'_c> / sqrt(D) per pixel; the final 1x1
  conv takes [F', F] (the per-class similarity maps and the projected features) -> logits.
- The pyramid is concatenated at the resolution of its finest level (H/4 x W/4 for the 4x
  level of a stride-16 ViT), not at H x W, and the logits are upsampled: at 512 px a full-size
  concatenation would take ~800 MB of activations per image.
- Mask loss: with two mask channels (M_real, M_fake) softmax cross-entropy equals BCE on
  M_fake - M_real. The edge term is IML-ViT's: the same loss averaged over an edge band of the
  ground-truth mask (dilation XOR erosion, ``edge_width`` px), added with weight 1.
- VCA's output projection starts at zero, so training starts from the unmodified MAE features.
- Semantic task (one class per generator): one learned prompt per class (real + each
  generator), the image CE is over those classes and the mask head has one channel per class.
- The MAE encoder is any timm ViT (default ViT-B/32 as the paper's text, at the training
  resolution, positional embeddings interpolated); its weights load from a local MAE/timm
  file. The official code (github.com/iamwangyabin/OpenSDI, model/clip_utils.py) uses IML-ViT's
  MAE ViT-B/16 with windowed attention and relative positions instead; pass
  ``mae_model="vit_base_patch16_224"`` for its patch size. Its other differences (edge weight
  20, seven CLIP layers, a 4-level decoder with one text query) are listed in
  docs/recipes/opensdi_models.md.
"""

from __future__ import annotations

import logging
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    DETECTORS,
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageHeadDetector,
    pixel_loss,
    read_weights_file,
    weights_follow_active,
)
from .clip import CLIP_MEAN, CLIP_STD, FrozenModule, clip_vision_layers, load_clip

logger = logging.getLogger(__name__)


class PromptLearner(nn.Module):
    """Class-specific learnable context vectors encoded by a frozen CLIP text tower.

    ``forward(clip)`` -> (num_classes, projection_dim) class embeddings t_c.

    ``depth`` > 1 adds deep prompts in the IVLP manner of the official code base's vendored CLIP
    (``ResidualAttentionBlock_IVLP``): before each text layer 2..depth, the hidden states at the
    M context positions are replaced by that layer's own learnable vectors (shared by the
    classes, as there). ``depth`` = 1 is the shallow CoOp prompt.
    """

    def __init__(self, num_classes: int, length: int, width: int, bos_token_id: int, eos_token_id: int,
                 depth: int = 1):
        super().__init__()
        if int(length) < 1 or int(depth) < 1:
            raise ValueError(f"prompt length and depth must be >= 1, got {length} and {depth}")
        self.context = nn.Parameter(torch.randn(num_classes, length, width) * 0.02)  # CoOp's init
        self.deep = nn.Parameter(torch.randn(int(depth) - 1, length, width) * 0.02) if depth > 1 else None
        self.bos_token_id = int(bos_token_id)
        self.eos_token_id = int(eos_token_id)

    def forward(self, clip: nn.Module) -> torch.Tensor:
        text = clip.text_model
        token_embedding = text.embeddings.token_embedding
        if max(self.bos_token_id, self.eos_token_id) >= token_embedding.num_embeddings:
            raise ValueError(f"bos/eos token ids {self.bos_token_id}/{self.eos_token_id} are outside the CLIP "
                             f"vocabulary of {token_embedding.num_embeddings}")
        classes, length, width = self.context.shape
        bos = token_embedding.weight[self.bos_token_id].expand(classes, 1, width)
        eos = token_embedding.weight[self.eos_token_id].expand(classes, 1, width)
        hidden = text.embeddings(inputs_embeds=torch.cat([bos, self.context, eos], dim=1))
        size = hidden.shape[1]
        causal = torch.full((size, size), torch.finfo(hidden.dtype).min, device=hidden.device).triu(1)[None, None]
        deep = 0 if self.deep is None else self.deep.shape[0]
        if deep >= len(text.encoder.layers):
            raise ValueError(f"prompt depth {deep + 1} exceeds the CLIP text tower's {len(text.encoder.layers)} layers")
        for index, layer in enumerate(text.encoder.layers):
            if 1 <= index <= deep:
                layer_context = self.deep[index - 1].expand(classes, length, width)
                hidden = torch.cat([hidden[:, :1], layer_context, hidden[:, 1 + length:]], dim=1)
            hidden = layer(hidden, causal)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        hidden = text.final_layer_norm(hidden)
        return clip.text_projection(hidden[:, -1])  # the EOS position


class VisualCrossAttention(nn.Module):
    """VCA: CLIP patch tokens (resized to the MAE grid, 1x1-projected) attend to MAE tokens."""

    def __init__(self, clip_width: int, mae_width: int, heads: int):
        super().__init__()
        self.align = nn.Conv2d(clip_width, mae_width, 1)
        self.norm_q = nn.LayerNorm(mae_width)
        self.norm_kv = nn.LayerNorm(mae_width)
        self.attention = nn.MultiheadAttention(mae_width, heads, batch_first=True)
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)

    def forward(self, mae_tokens: torch.Tensor, grid: tuple[int, int], clip_patches: torch.Tensor) -> torch.Tensor:
        batch, count, width = clip_patches.shape
        side = int(round(count ** 0.5))
        clip_grid = clip_patches.transpose(1, 2).reshape(batch, width, side, side)
        clip_grid = F.interpolate(clip_grid, size=grid, mode="bilinear", align_corners=False)
        queries = self.norm_q(self.align(clip_grid).flatten(2).transpose(1, 2))
        keys = self.norm_kv(mae_tokens)
        attended, _ = self.attention(queries, keys, keys, need_weights=False)
        return mae_tokens + attended


class ClsSelfAttention(nn.Module):
    """VSA: self-attention over [CLS] tokens of several CLIP layers, mean-pooled, projected."""

    def __init__(self, width: int, heads: int, out_width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.project = nn.Linear(width, out_width)

    def forward(self, cls_tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(cls_tokens)
        x = cls_tokens + self.attention(x, x, x, need_weights=False)[0]
        return self.project(x.mean(dim=1))


class PyramidDecoder(nn.Module):
    """Simple feature pyramid on a stride-p ViT map: each scale (0.5x: max-pool, 2x / 4x:
    transposed convs) gets a 3x3 conv; all are resized to the finest scale and concatenated."""

    def __init__(self, width: int, channels: int, scales: tuple[float, ...]):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        branches = []
        for scale in self.scales:
            if scale == 4.0:
                resample = nn.Sequential(nn.ConvTranspose2d(width, width // 2, 2, stride=2), nn.GroupNorm(1, width // 2), nn.GELU(),
                                         nn.ConvTranspose2d(width // 2, width // 4, 2, stride=2))
                out = width // 4
            elif scale == 2.0:
                resample, out = nn.ConvTranspose2d(width, width // 2, 2, stride=2), width // 2
            elif scale == 1.0:
                resample, out = nn.Identity(), width
            elif scale == 0.5:
                resample, out = nn.MaxPool2d(2, ceil_mode=True), width
            else:
                raise ValueError(f"pyramid scales must be among 0.5, 1, 2, 4; got {scale}")
            branches.append(nn.Sequential(resample, nn.Conv2d(out, channels, 3, padding=1, bias=False),
                                          nn.BatchNorm2d(channels), nn.ReLU(inplace=True)))
        self.branches = nn.ModuleList(branches)
        self.out_channels = channels * len(self.scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[-2] * max(self.scales)), int(x.shape[-1] * max(self.scales)))
        levels = []
        for branch in self.branches:
            level = branch(x)
            if level.shape[-2:] != size:
                level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            levels.append(level)
        return torch.cat(levels, dim=1)


class TextVisualCrossAttention(nn.Module):
    """TVCA: class embeddings attend to the decoder features; per-class similarity maps plus
    the projected features go through a 1x1 conv to the mask logits."""

    def __init__(self, feature_channels: int, text_width: int, heads: int, out_channels: int):
        super().__init__()
        self.project = nn.Conv2d(feature_channels, text_width, 1)
        self.norm = nn.LayerNorm(text_width)
        self.attention = nn.MultiheadAttention(text_width, heads, batch_first=True)
        self.classify = nn.Conv2d(out_channels + text_width, out_channels, 1)

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        projected = self.project(features)                               # (B, D, h, w)
        batch, width, height, breadth = projected.shape
        tokens = self.norm(projected.flatten(2).transpose(1, 2))          # (B, hw, D)
        queries = text.unsqueeze(0).expand(batch, -1, -1)                 # (B, C, D)
        refined = queries + self.attention(queries, tokens, tokens, need_weights=False)[0]
        similarity = torch.einsum("bcd,bnd->bcn", refined, tokens) / width ** 0.5
        similarity = similarity.reshape(batch, -1, height, breadth)
        return self.classify(torch.cat([similarity, projected], dim=1))


def build_mae_encoder(mae_model: str, mae_kwargs: dict[str, Any] | None) -> nn.Module:
    """A timm ViT without [CLS] token or head, at any input size (positional embeddings are
    interpolated), as MAE's encoder is used in MaskCLIP / IML-ViT."""
    kwargs = {"pretrained": False, "num_classes": 0, "class_token": False, "global_pool": "",
              "dynamic_img_size": True, **(mae_kwargs or {})}
    return timm.create_model(mae_model, **kwargs)


def load_mae_weights(vit: nn.Module, path: str) -> None:
    """Load a local MAE / timm ViT state dict into ``vit`` (built by ``build_mae_encoder``).

    A [CLS] token and its positional embedding in the file are dropped, the positional grid is
    resampled to this encoder's, decoder / head keys are ignored (logged).

    Raises:
        ValueError: an encoder key is missing from the file or has another shape.
    """
    from timm.layers import resample_abs_pos_embed

    state = read_weights_file(path)
    state = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state.items()}
    expected = vit.state_dict()
    if "pos_embed" in state and "pos_embed" in expected:
        pos = state["pos_embed"]
        if not _is_square(pos.shape[1]) and _is_square(pos.shape[1] - 1):
            pos = pos[:, 1:]  # the [CLS] token's position: this encoder has no [CLS]
        state["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(vit.patch_embed.grid_size), num_prefix_tokens=0)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} of the MAE encoder's keys (first: {missing[:5]})")
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{path}: shape mismatch (key, file, encoder): {wrong[:5]}")
    unused = sorted(set(state) - set(expected))
    if unused:
        logger.info("maskclip: ignoring %d keys of %s not in the MAE encoder (e.g. %s)", len(unused), path, unused[:3])
    vit.load_state_dict({k: state[k] for k in expected})
    logger.info("maskclip: loaded MAE encoder weights from %s", path)


class MaskCLIPNetwork(nn.Module):
    """Normalised (ImageNet) (B, 3, H, W), sides multiples of the MAE patch ->
    (mask logits (B, C, H/4', W/4'), image logits (B, C))."""

    def __init__(self, num_classes: int, clip: nn.Module, mae: nn.Module, prompt_length: int, vca_layers: list[int],
                 cls_layers: list[int] | None, decoder_channels: int, fpn_scales: tuple[float, ...], heads: int,
                 prompt_depth: int = 1):
        super().__init__()
        self.clip = FrozenModule(clip)
        self.mae = mae
        text_config, vision_config = clip.config.text_config, clip.config.vision_config
        text_width, clip_width = text_config.hidden_size, vision_config.hidden_size
        projection = clip.config.projection_dim
        mae_width = mae.embed_dim
        clip_depth, mae_depth = vision_config.num_hidden_layers, len(mae.blocks)
        self.clip_image_size = vision_config.image_size
        self.prompts = PromptLearner(num_classes, prompt_length, text_width, text_config.bos_token_id,
                                     text_config.eos_token_id, depth=prompt_depth)

        if not vca_layers or any(not 1 <= l <= mae_depth for l in vca_layers):
            raise ValueError(f"vca_layers must be 1-based MAE block indices in 1..{mae_depth}, got {vca_layers}")
        self.vca_layers = sorted(int(l) for l in vca_layers)
        # The CLIP layer at the same relative depth as each MAE fusion layer.
        self.vca_clip_layers = [max(1, round(l * clip_depth / mae_depth)) for l in self.vca_layers]
        self.vca = nn.ModuleList(VisualCrossAttention(clip_width, mae_width, _heads(mae_width, heads)) for _ in self.vca_layers)
        self.cls_layers = sorted(cls_layers) if cls_layers else list(range(1, clip_depth + 1))
        if any(not 1 <= l <= clip_depth for l in self.cls_layers):
            raise ValueError(f"cls_layers must be 1-based CLIP layer indices in 1..{clip_depth}, got {cls_layers}")
        self.vsa = ClsSelfAttention(clip_width, _heads(clip_width, heads), projection)
        self.decoder = PyramidDecoder(mae_width, decoder_channels, fpn_scales)
        self.tvca = TextVisualCrossAttention(self.decoder.out_channels, projection, _heads(projection, heads), num_classes)

        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clip.module
        with torch.no_grad():  # frozen, and its input is not learned: no graph needed
            raw = x * self.imagenet_std + self.imagenet_mean
            pixels = F.interpolate(raw, size=(self.clip_image_size,) * 2, mode="bicubic", align_corners=False)
            clip_states = clip_vision_layers(clip.vision_model, (pixels - self.clip_mean) / self.clip_std)
            cls_tokens = torch.stack([clip.vision_model.post_layernorm(clip_states[l - 1][:, 0]) for l in self.cls_layers], 1)

        text = self.prompts(clip)                                          # (C, P)
        image_embedding = self.vsa(cls_tokens)                            # (B, P)
        scale = clip.logit_scale.exp().clamp(max=100.0)
        image_logits = scale * F.normalize(image_embedding, dim=-1) @ F.normalize(text, dim=-1).t()

        tokens = self.mae.patch_embed(x)                                  # (B, h, w, D) with dynamic size
        grid = (tokens.shape[1], tokens.shape[2])
        tokens = self.mae.norm_pre(self.mae.patch_drop(self.mae._pos_embed(tokens)))
        fusions = dict(zip(self.vca_layers, zip(self.vca, self.vca_clip_layers)))
        for index, block in enumerate(self.mae.blocks, start=1):
            tokens = block(tokens)
            if index in fusions:
                vca, clip_layer = fusions[index]
                tokens = vca(tokens, grid, clip_states[clip_layer - 1][:, 1:])
        tokens = self.mae.norm(tokens)
        feature_map = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid)
        mask_logits = self.tvca(self.decoder(feature_map), text)
        return mask_logits, image_logits


def _is_square(n: int) -> bool:
    return n > 0 and round(n ** 0.5) ** 2 == n


def _heads(width: int, wanted: int) -> int:
    """The largest head count <= ``wanted`` that divides ``width``."""
    return next(h for h in range(min(wanted, width), 0, -1) if width % h == 0)


def edge_band(target: torch.Tensor, width: int) -> torch.Tensor:
    """bool (B, H, W): pixels within ``width // 2`` px of a class boundary of ``target``
    (dilation XOR erosion of each class region, as IML-ViT's edge mask), ignored pixels excluded."""
    valid = target != IGNORE_INDEX
    labels = torch.where(valid, target, torch.zeros_like(target)).float().unsqueeze(1)
    pad = width // 2
    high = F.max_pool2d(labels, width, stride=1, padding=pad)
    low = -F.max_pool2d(-labels, width, stride=1, padding=pad)
    return ((high != low).squeeze(1)[..., : target.shape[-2], : target.shape[-1]]) & valid


class MaskCLIPDetector(ImageHeadDetector):
    """MaskCLIP behind the detector interface; objective = CE(image) + CE/BCE(mask) + edge term."""

    edge_width = 7
    edge_loss_weight = 1.0

    def loss(self, outputs, target, image_label):
        total, parts = super().loss(outputs, target, image_label)
        edge = edge_band(target, self.edge_width)
        edge_target = torch.where(edge, target, torch.full_like(target, IGNORE_INDEX))
        edge_loss = pixel_loss(outputs.pixel_logits, edge_target)
        parts["edge"] = edge_loss.detach()
        return total + self.edge_loss_weight * edge_loss, parts


@DETECTORS.register("maskclip", description="MaskCLIP (OpenSDI): frozen CLIP + learned prompts, MAE ViT with visual cross-attention, FPN + text-visual cross-attention")
def build_maskclip(
    num_classes: int,
    clip_model: str | None = None,
    clip_config: dict[str, Any] | None = None,
    mae_model: str = "vit_base_patch32_224",
    mae_kwargs: dict[str, Any] | None = None,
    mae_weights: str | None = None,
    prompt_length: int = 10,
    prompt_depth: int = 1,
    vca_layers: list[int] | None = None,
    cls_layers: list[int] | None = None,
    decoder_channels: int = 256,
    fpn_scales: tuple[float, ...] | list[float] = (0.5, 2.0, 4.0),
    heads: int = 8,
    edge_width: int = 7,
    edge_loss_weight: float = 1.0,
    random_init: bool = False,
) -> MaskCLIPDetector:
    """MaskCLIP with ``num_classes`` outputs (2: real/fake prompts; more: one prompt per class).

    Args:
        clip_model: local folder or cached Hugging Face id of a CLIP (seeds: OpenAI ViT-L/14);
            None builds CLIP from ``clip_config`` at random init, only with ``random_init``.
            Never downloads.
        clip_config: CLIPConfig fields; default ViT-L/14. Recorded automatically when the
            model is loaded from ``clip_model``.
        mae_model: timm ViT name for the MAE encoder (its architecture; weights come only from
            ``mae_weights``). Default ViT-B/32, as the paper's section 5 states ("ImageNet
            pretrained weights ViT-B/32"); the official code runs IML-ViT's MAE ViT-B/16
            (``vit_base_patch16_224`` here, without its windowed attention), the default before.
        mae_kwargs: extra ``timm.create_model`` arguments (e.g. ``img_size``, ``embed_dim``,
            ``depth``, ``num_heads`` for small variants).
        mae_weights: LOCAL MAE / timm ViT weights file, or None (random init, warning).
        prompt_length: M, context vectors per class (paper: 10).
        prompt_depth: text layers that get learnable context vectors (1 = shallow, the paper's
            text and the path the official ``MaskCLIP.forward`` runs; the official settings carry
            ``language_depth: 5`` for an IVLP-style deep prompt that its released model never
            reads, see docs/recipes/opensdi_models.md).
        vca_layers: 1-based MAE blocks after which VCA fuses CLIP features; default four
            evenly spaced blocks (3, 6, 9, 12 for ViT-B).
        cls_layers: 1-based CLIP layers whose [CLS] tokens VSA attends over; default all.
        decoder_channels: width of each pyramid level.
        fpn_scales: pyramid scales relative to the ViT grid (paper: 0.5x, 2x, 4x).
        heads: attention heads of VCA / VSA / TVCA (reduced to a divisor of the width).
        edge_width: width in px of the edge band of the edge-weighted loss.
        edge_loss_weight: weight of the edge term (paper section 4: every loss weight is 1; the
            official code multiplies an all-pixel-averaged edge-weighted BCE by 20).
        random_init: random frozen CLIP weights are meant (see ``clip.load_clip``).
    Raises:
        ValueError: bad layer indices, prompt length / depth < 1 or deeper than the text tower,
            edge_loss_weight < 0, ``clip_model`` None without ``random_init``.
    """
    if edge_loss_weight < 0:
        raise ValueError(f"edge_loss_weight must be >= 0, got {edge_loss_weight}")
    follow = weights_follow_active()
    clip, resolved_clip = load_clip(clip_model, clip_config, detector="maskclip", rebuild_only=follow,
                                     random_init=random_init)
    mae = build_mae_encoder(mae_model, mae_kwargs)
    if mae_weights is not None and not follow:
        load_mae_weights(mae, mae_weights)
    elif mae_weights is None and not follow:
        logger.warning("detector 'maskclip': mae_weights=None, the MAE encoder is randomly initialised "
                       "(pass a local MAE ViT weights file for the pretrained encoder)")
    depth = len(mae.blocks)
    if vca_layers is None:
        vca_layers = sorted({max(1, round(depth * i / 4)) for i in range(1, 5)})
    network = MaskCLIPNetwork(num_classes, clip, mae, prompt_length, list(vca_layers), list(cls_layers) if cls_layers else None,
                              decoder_channels, tuple(fpn_scales), heads, prompt_depth=prompt_depth)
    patch = mae.patch_embed.patch_size[0]
    # The pyramid's 0.5x level pools the ViT grid by 2: pad inputs to a multiple of 2 patches.
    divisor = patch * (2 if 0.5 in network.decoder.scales else 1)
    detector = MaskCLIPDetector(network, num_classes, input_divisor=divisor)
    detector.edge_width = int(edge_width)
    detector.edge_loss_weight = float(edge_loss_weight)
    # Recorded with every checkpoint so that a later change of a default cannot rebuild it differently.
    detector.resolved_config = {"mae_model": mae_model, "prompt_depth": int(prompt_depth),
                                "edge_loss_weight": float(edge_loss_weight)}
    if clip_model is not None:
        detector.resolved_config["clip_config"] = resolved_clip
    return detector
