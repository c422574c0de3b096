"""NFA-ViT (BR-Gen, "Zooming In on Fakes", section 4): a Noise-guided Forgery Amplification ViT.

Structure, following the paper's text, with what the text leaves open settled by the authors'
code (github.com/clpbc/BR-Gen, ``model_zoo/nfa_vit``; read, not copied):

- a noise extractor turns the RGB image into a noise residual (the paper uses Noiseprint++, the
  DnCNN of TruFor: 17 levels, 64 features, one output plane); loaded from a local file
  (``noiseprint_weights``: TruFor's released ``trufor.pth.tar``, whose ``dncnn.*`` tensors are
  Noiseprint++, or any file holding those tensors), otherwise learned from scratch;
- an image branch, SegFormer's Mix Transformer MiT-b2, on the RGB image, and a noise branch,
  MiT-b0, on the residual (smp's MiT encoders, so their state-dict keys are those of smp's
  ``mit_b*`` encoders and SegFormer's ImageNet weights load into them);
- Fix-Sparse Attention (section 4.2, from SparseViT) in every image block but the last of each
  stage: the query at (r, c) may attend only to the keys at (r', c') of its own sparse group,
  ``((r // sr) mod s, (c // sr) mod s) == (r' mod s, c' mod s)`` with sr the stage's key
  reduction and s = ``sparse_rate`` (2 in the authors' code), i.e. to a dilated grid of keys;
- Noise-guided Amplification Attention (NAA, eq. 2-4): in the LAST block of every stage the
  noise branch's attention logits Q_n K_n^T / sqrt(d) select, for each query, the top-k LEAST
  similar keys (k = floor(``topk_ratio`` x keys), at least 1; 25 % in the paper); the image
  branch's last block of the same stage attends only to those keys. Both branches have the same
  heads and spatial-reduction ratios per stage (MiT b0 and b2 share them), so the masks line up;
- the weighted decoder (eq. 5-6): each stage's features projected to ``decoder_channels`` (512),
  upsampled to 1/4, scaled by a learnable gamma_i (a per-channel vector initialised to 1e-6, as
  in the authors' ``Multiple`` decoder), summed, LayerNorm, and projected to the mask logits;
- the image logit from the image branch's last-stage features F4: global average pooling and a
  linear layer (the authors' ``cls_decoder``; the paper's "lightweight backbone network");
- loss (eq. 7) = BCE(mask) + BCE(image label), equal weights. The paper's optimiser and schedule
  are ``RECOMMENDED_TRAINING`` (and conf/brgen/parameters_train.yml).

Choices that differ from the authors' code, or options beyond it:

- The top-k selection is a hard indicator, so no gradient reaches the noise branch through the
  masks (true of the authors' code too: their noise features feed nothing else). The option
  ``noise_to_decoder`` (default False, the paper) also projects each noise stage's features and
  adds them to the same decoder level, which lets the noise branch learn.
- Every block keeps the standard pre-norm residual form. In the authors' code the noise blocks
  and the image branch's NAA blocks skip ``norm1`` and the attention residual (``x = attn(x);
  x = x + drop_path(x)``); the paper's text says NAA keeps residual connections, so we follow it.
- Where the key grid is too small for every sparse group to hold a key (inputs under 32 x s
  pixels at stage 1), a query with no key of its group attends to all keys, which is what the
  authors' -1e9 fill amounts to.
- Noiseprint++'s one output plane is repeated to the 3 channels MiT-b0 expects, so ImageNet
  weights load unchanged (the authors build the noise MiT with one input channel).
- ``head_channels`` (an int) selects the former conv + BatchNorm + ReLU + avg/max-pool head.
- The semantic task (one class per generator) keeps the paper's structure with a C-way decoder
  output and cross-entropy; the image head stays a binary "contains an edit" logit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    DETECTORS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageHeadDetector,
    load_encoder_weights,
    read_weights_file,
    weights_follow_active,
)

logger = logging.getLogger(__name__)


class NoiseResidualExtractor(nn.Module):
    """DnCNN noise-residual extractor in the layout of TruFor's Noiseprint++ (``make_net``):
    a flat ``nn.Sequential`` of conv(3->F)+ReLU, (levels-2) x [conv(F->F, no bias)+BN+ReLU],
    conv(F->out). Input: RGB in [0, 1], (B, 3, H, W); output (B, out_channels, H, W)."""

    def __init__(self, levels: int = 17, features: int = 64, out_channels: int = 1):
        super().__init__()
        if levels < 2:
            raise ValueError(f"a DnCNN needs at least 2 levels, got {levels}")
        layers: list[nn.Module] = [nn.Conv2d(3, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(levels - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        self.frozen = False

    def freeze(self) -> None:
        """No gradients, and BatchNorm keeps its statistics even when the detector trains."""
        self.frozen = True
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> NoiseResidualExtractor:
        return super().train(mode and not self.frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_noiseprint_weights(extractor: NoiseResidualExtractor, path: str | Path) -> None:
    """Load a local DnCNN / Noiseprint++ state dict into ``extractor``.

    The file's keys may carry any common prefix (``dncnn.``, ``module.``, ...) in front of the
    flat-Sequential indices (``0.weight``, ``3.running_mean``, ...); the prefix is found by
    matching the extractor's own keys as suffixes.

    Raises:
        ValueError: no prefix makes every key of the extractor present with the right shape.
    """
    state = read_weights_file(path)
    expected = extractor.layers.state_dict()
    first = next(iter(expected))
    prefixes = {k[: -len(first)] for k in state if k.endswith(first) and (len(k) == len(first) or k[-len(first) - 1] == ".")}
    for prefix in sorted(prefixes, key=len):
        candidate = {k: state.get(prefix + k) for k in expected}
        if all(v is not None and v.shape == expected[k].shape for k, v in candidate.items()):
            extractor.layers.load_state_dict(candidate)
            logger.info("nfa_vit: loaded noise extractor weights from %s (prefix %r)", path, prefix)
            return
    raise ValueError(
        f"{path} does not hold DnCNN weights for {len(expected)} tensors laid out as this extractor "
        f"(levels/features/out_channels must match; first expected key {first!r})"
    )


def _mit_encoder(name: str) -> nn.Module:
    if not name.startswith("mit_b"):
        raise ValueError(f"NFA-ViT branches are Mix Transformers (mit_b0 ... mit_b5), got {name!r}")
    return smp.encoders.get_encoder(name, in_channels=3, depth=5, weights=None)


def _stages(encoder: nn.Module) -> list[tuple[nn.Module, nn.Sequential, nn.Module]]:
    return [(getattr(encoder, f"patch_embed{i}"), getattr(encoder, f"block{i}"), getattr(encoder, f"norm{i}")) for i in range(1, 5)]


def masked_attention(attn: nn.Module, y: torch.Tensor, height: int, width: int,
                     keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """smp MiT ``Attention`` on normalised tokens ``y`` (B, N = height * width, C), its softmax
    restricted to ``keep`` (bool, broadcastable to (B, heads, N, N_k), True = may attend) when given.

    Returns (attention output (B, N, C) after the projection, the logits Q K^T / sqrt(d) before
    masking (B, heads, N, N_k)). Same arithmetic as smp's ``Attention.forward`` otherwise.
    """
    batch, _, channels = y.shape
    heads = attn.num_heads
    q = attn.q(y).reshape(batch, -1, heads, channels // heads).permute(0, 2, 1, 3)
    if attn.sr_ratio > 1:
        reduced = attn.sr(y.transpose(1, 2).reshape(batch, channels, height, width))
        y = attn.norm(reduced.reshape(batch, channels, -1).transpose(1, 2))
    kv = attn.kv(y).reshape(batch, -1, 2, heads, channels // heads).permute(2, 0, 3, 1, 4)
    k, v = kv[0], kv[1]
    logits = (q @ k.transpose(-2, -1)) * attn.scale
    scores = logits if keep is None else logits.masked_fill(~keep, float("-inf"))
    weights = attn.attn_drop(scores.softmax(dim=-1))
    out = attn.proj_drop(attn.proj((weights @ v).transpose(1, 2).reshape(batch, -1, channels)))
    return out, logits


def _attention_block(block: nn.Module, x: torch.Tensor, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One smp MiT ``Block`` on (B, C, H, W) with its attention restricted to ``keep`` (see
    ``masked_attention``). Returns (output (B, C, H, W), the attention logits before masking)."""
    batch, channels, height, width = x.shape
    tokens = x.flatten(2).transpose(1, 2)
    out, logits = masked_attention(block.attn, block.norm1(tokens), height, width, keep)
    tokens = tokens + block.drop_path(out)
    tokens = tokens + block.drop_path(block.mlp(block.norm2(tokens), height, width))
    return tokens.transpose(1, 2).reshape(batch, channels, height, width), logits


def least_similar_mask(logits: torch.Tensor, ratio: float) -> torch.Tensor:
    """Noise-guided mask (eq. 3): True at the top-k LEAST similar keys of every query.

    Args:
        logits: (B, heads, N, N_k) attention logits (softmax is monotonic, so the top-k of
            -softmax equals the top-k of -logits).
        ratio: fraction of keys kept, k = max(1, floor(ratio * N_k)).
    Returns:
        bool tensor of the same shape, no gradient.
    """
    keys = logits.shape[-1]
    k = max(1, min(keys, int(ratio * keys)))  # floor, as the authors' code
    index = (-logits.detach()).topk(k, dim=-1).indices
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, index, True)


def fix_sparse_mask(query_hw: tuple[int, int], key_hw: tuple[int, int], sr_ratio: int, sparse_rate: int,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Fix-Sparse Attention's fixed pattern (SparseViT; NFA-ViT section 4.2): True where a query may
    attend to a key.

    The query at (r, c) of the ``query_hw`` grid belongs to group ((r // sr_ratio) mod s,
    (c // sr_ratio) mod s), i.e. the group of the reduced key cell it falls in; the key at (r', c')
    of the ``key_hw`` grid to (r' mod s, c' mod s); a query sees only its group's keys. A query whose
    group has no key (a key grid smaller than s) sees all keys.

    Returns:
        bool (H_q * W_q, H_k * W_k), row-major token order as MiT flattens its feature maps.
    Raises:
        ValueError: sparse_rate < 1 or sr_ratio < 1.
    """
    if sparse_rate < 1 or sr_ratio < 1:
        raise ValueError(f"sparse_rate and sr_ratio must be >= 1, got {sparse_rate} and {sr_ratio}")
    qr = torch.arange(query_hw[0], device=device) // sr_ratio % sparse_rate
    qc = torch.arange(query_hw[1], device=device) // sr_ratio % sparse_rate
    kr = torch.arange(key_hw[0], device=device) % sparse_rate
    kc = torch.arange(key_hw[1], device=device) % sparse_rate
    q_group = (qr[:, None] * sparse_rate + qc[None, :]).reshape(-1)
    k_group = (kr[:, None] * sparse_rate + kc[None, :]).reshape(-1)
    keep = q_group[:, None] == k_group[None, :]
    return keep | ~keep.any(dim=1, keepdim=True)


def _sparse_block(block: nn.Module, x: torch.Tensor, sparse_rate: int) -> torch.Tensor:
    """An smp MiT ``Block`` with Fix-Sparse Attention, on (B, C, H, W)."""
    height, width = x.shape[-2:]
    sr = block.attn.sr_ratio
    # smp's reduction is a conv with kernel = stride = sr and no padding: floor(H / sr) key rows.
    key_hw = (height // sr, width // sr) if sr > 1 else (height, width)
    keep = fix_sparse_mask((height, width), key_hw, sr, sparse_rate, device=x.device)
    out, _ = _attention_block(block, x, keep[None, None])
    return out


class WeightedDecoder(nn.Module):
    """Eq. 5-6: per level a linear (1x1) projection to ``channels``, upsampling to the finest level,
    a learnable scale gamma_i, sum, LayerNorm, linear projection to ``out_channels``.

    gamma_i is a per-channel vector initialised to ``gamma_init`` (1e-6) and the sum is
    layer-normalised, as in the authors' ``Multiple`` decoder (the paper says only "learnable
    scaling parameters"). ``extra_channels``: the optional noise path (see the module docstring).
    """

    def __init__(self, in_channels: list[int], channels: int, out_channels: int, extra_channels: list[int] | None = None,
                 dropout: float = 0.0, gamma_init: float = 1e-6):
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.project_extra = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in extra_channels) if extra_channels else None
        self.gamma = nn.Parameter(torch.full((len(in_channels), channels), float(gamma_init)))
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.dropout = nn.Dropout2d(dropout)
        self.classify = nn.Conv2d(channels, out_channels, 1)

    def forward(self, features: list[torch.Tensor], extra: list[torch.Tensor] | None = None) -> torch.Tensor:
        size = features[0].shape[-2:]
        fused = 0
        for i, feature in enumerate(features):
            level = self.project[i](feature)
            if extra is not None and self.project_extra is not None:
                level = level + self.project_extra[i](extra[i])
            if level.shape[-2:] != size:
                level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
            fused = fused + self.gamma[i].view(1, -1, 1, 1) * level
        fused = self.norm(fused.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.classify(self.dropout(fused))


class NFAViT(nn.Module):
    """The dual-branch network: normalised (B, 3, H, W), sides multiples of 32 ->
    (mask logits (B, out_channels, H/4, W/4), image logits (B, 1))."""

    def __init__(
        self,
        out_channels: int,
        image_encoder: str,
        noise_encoder: str,
        topk_ratio: float,
        decoder_channels: int,
        noise_levels: int,
        noise_features: int,
        noise_to_decoder: bool,
        head_channels: int | None,
        sparse_rate: int = 2,
    ):
        super().__init__()
        if not 0.0 < topk_ratio <= 1.0:
            raise ValueError(f"topk_ratio must be in (0, 1], got {topk_ratio}")
        if int(sparse_rate) < 1:
            raise ValueError(f"sparse_rate must be >= 1 (1 = dense attention), got {sparse_rate}")
        self.topk_ratio = float(topk_ratio)
        self.sparse_rate = int(sparse_rate)
        self.noise_extractor = NoiseResidualExtractor(noise_levels, noise_features, out_channels=1)
        self.image_encoder = _mit_encoder(image_encoder)
        self.noise_encoder = _mit_encoder(noise_encoder)
        for i, ((_, image_blocks, _), (_, noise_blocks, _)) in enumerate(zip(_stages(self.image_encoder), _stages(self.noise_encoder))):
            a, b = image_blocks[-1].attn, noise_blocks[-1].attn
            if (a.num_heads, a.sr_ratio) != (b.num_heads, b.sr_ratio):
                raise ValueError(
                    f"stage {i + 1}: image branch has {a.num_heads} heads / reduction {a.sr_ratio}, noise branch "
                    f"{b.num_heads} / {b.sr_ratio}; NAA needs them equal (MiT b0..b5 all share them)"
                )
        image_channels = list(self.image_encoder.out_channels[2:])
        noise_channels = list(self.noise_encoder.out_channels[2:])
        self.decoder = WeightedDecoder(image_channels, decoder_channels, out_channels,
                                       extra_channels=noise_channels if noise_to_decoder else None)
        self.noise_to_decoder = bool(noise_to_decoder)
        if head_channels is None:  # the authors' cls_decoder: global average pooling + linear
            self.image_head = None
            self.image_classifier = nn.Linear(image_channels[-1], 1)
        else:
            self.image_head = nn.Sequential(
                nn.Conv2d(image_channels[-1], head_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(head_channels),
                nn.ReLU(inplace=True),
            )
            self.image_classifier = nn.Linear(2 * head_channels, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The noise extractor works on RGB in [0, 1], as Noiseprint++ was trained.
        residual = self.noise_extractor(x * self.std + self.mean).expand(-1, 3, -1, -1)

        noise_features, masks = [], []
        n = residual
        for embed, blocks, norm in _stages(self.noise_encoder):
            n = embed(n)
            for block in blocks[:-1]:
                n = block(n)
            n, logits = _attention_block(blocks[-1], n, keep=None)
            masks.append(least_similar_mask(logits, self.topk_ratio))
            n = norm(n).contiguous()
            noise_features.append(n)

        image_features = []
        h = x
        for (embed, blocks, norm), keep in zip(_stages(self.image_encoder), masks):
            h = embed(h)
            for block in blocks[:-1]:
                h = _sparse_block(block, h, self.sparse_rate) if self.sparse_rate > 1 else block(h)
            h, _ = _attention_block(blocks[-1], h, keep=keep)
            h = norm(h).contiguous()
            image_features.append(h)

        mask_logits = self.decoder(image_features, noise_features if self.noise_to_decoder else None)
        if self.image_head is None:
            return mask_logits, self.image_classifier(image_features[-1].mean(dim=(2, 3)))
        pooled = self.image_head(image_features[-1])
        pooled = torch.cat([pooled.mean(dim=(2, 3)), pooled.amax(dim=(2, 3))], dim=1)
        return mask_logits, self.image_classifier(pooled)


# The paper's training recipe (section 5.1, "Implementation Details"): what a BR-Gen run of NFA-ViT
# should be trained with; conf/brgen/parameters_train.yml carries the same values for the trainer.
RECOMMENDED_TRAINING = {
    "optimizer": "Adam",
    "lr": 5e-3,
    "weight_decay": 1e-6,
    "schedule": "cosine",  # "Warmup and CosineAnnealing"; the warm-up length is not given
    "epochs": 30,
    "batch_size": 64,  # over four RTX 4090s
    "topk_ratio": 0.25,
    "loss_weights": {"mask": 1.0, "image": 1.0},  # "equal weights to all parts of the loss"
}


class NFAViTDetector(ImageHeadDetector):
    """NFA-ViT behind the detector interface; objective = pixel BCE/CE + image BCE (eq. 7)."""


@DETECTORS.register("nfa_vit", description="NFA-ViT (BR-Gen): MiT-b2 image + MiT-b0 noise branch, noise-guided attention, weighted decoder, image head")
def build_nfa_vit(
    num_classes: int,
    image_encoder: str = "mit_b2",
    noise_encoder: str = "mit_b0",
    topk_ratio: float = 0.25,
    decoder_channels: int = 512,
    noise_levels: int = 17,
    noise_features: int = 64,
    noise_to_decoder: bool = False,
    head_channels: int | None = None,
    single_logit: bool | None = None,
    image_encoder_weights: str | None = None,
    noise_encoder_weights: str | None = None,
    noiseprint_weights: str | None = None,
    freeze_noiseprint: bool | None = None,
    sparse_rate: int = 2,
    random_init: bool = False,
) -> NFAViTDetector:
    """NFA-ViT with ``num_classes`` outputs.

    Args:
        image_encoder, noise_encoder: smp MiT names (paper: "mit_b2" and "mit_b0").
        topk_ratio: fraction of keys each query keeps in NAA (paper: 0.25).
        decoder_channels: width of the weighted decoder (paper: 512).
        noise_levels, noise_features: DnCNN depth and width (Noiseprint++: 17 and 64).
        noise_to_decoder: also add the noise branch's stage features to the decoder (not in the
            paper; without it the noise branch receives no gradient, as in the authors' code).
        head_channels: None = the paper's image head (average pooling + linear on F4); an int =
            a conv head of that width with average and max pooling (this project's earlier head).
        sparse_rate: Fix-Sparse Attention's group stride s in the image branch's non-NAA blocks
            (2 in the authors' code); 1 = dense attention there.
        single_logit: one mask logit with BCE (the paper's loss); None = True for the binary
            task (num_classes == 2). Ignored (must be None/False) for the semantic task.
        image_encoder_weights, noise_encoder_weights: LOCAL smp-layout MiT weight files (the
            same files SegFormer's ``encoder_weights`` takes) or smp weight names ("imagenet",
            from the Hugging Face cache), or None: random init, warning.
        noiseprint_weights: LOCAL DnCNN / Noiseprint++ weights file, or None: random init.
        freeze_noiseprint: keep the noise extractor fixed; None = frozen when
            ``noiseprint_weights`` is given (a pretrained fingerprint extractor is a fixed
            feature in TruFor and BR-Gen) or when ``noise_to_decoder`` is False (no gradient
            reaches it; the noise MiT is frozen too then), trainable otherwise.
        random_init: True says a FROZEN part without weights is meant (tests, ablations); else
            a frozen noise extractor without ``noiseprint_weights``, or a frozen noise MiT
            (``noise_to_decoder=False``) without ``noise_encoder_weights``, is an error.

    Raises:
        ValueError: topk_ratio outside (0, 1], sparse_rate < 1, freeze_noiseprint=False without
            noise_to_decoder, a weights file that does not fit, or a frozen part with random
            weights without ``random_init``.
    """
    if single_logit is None:
        single_logit = num_classes == 2
    network = NFAViT(
        out_channels=1 if single_logit else num_classes,
        image_encoder=image_encoder,
        noise_encoder=noise_encoder,
        topk_ratio=topk_ratio,
        decoder_channels=decoder_channels,
        noise_levels=noise_levels,
        noise_features=noise_features,
        noise_to_decoder=noise_to_decoder,
        head_channels=head_channels,
        sparse_rate=sparse_rate,
    )
    load_encoder_weights(network.image_encoder, image_encoder_weights, detector="nfa_vit (image branch)",
                         smp_encoder=image_encoder)
    load_encoder_weights(network.noise_encoder, noise_encoder_weights, detector="nfa_vit (noise branch)",
                         smp_encoder=noise_encoder)
    if noiseprint_weights is not None and not weights_follow_active():
        load_noiseprint_weights(network.noise_extractor, noiseprint_weights)
    elif noiseprint_weights is None and not weights_follow_active():
        logger.warning("detector 'nfa_vit': noiseprint_weights=None, the noise extractor is randomly initialised "
                       "(pass a local Noiseprint++ file, e.g. TruFor's trufor.pth.tar, to use the paper's extractor)")
    if not noise_to_decoder:
        # The paper's wiring: the noise branch only yields hard top-k masks, so no gradient can reach
        # it or the extractor; freezing says so (the trainer skips them) instead of leaving dead weights.
        if freeze_noiseprint is False:
            raise ValueError("nfa_vit: freeze_noiseprint=False needs noise_to_decoder=True (without the noise "
                             "path to the decoder no gradient reaches the noise extractor)")
        network.noise_encoder.requires_grad_(False)
        if noise_encoder_weights is None and not weights_follow_active():
            logger.warning("detector 'nfa_vit': the noise branch is randomly initialised and, as in the paper, "
                           "receives no gradient: pass noise_encoder_weights (SegFormer-b0 ImageNet weights)")
    frozen = (noiseprint_weights is not None or not noise_to_decoder) if freeze_noiseprint is None else bool(freeze_noiseprint)
    _refuse_frozen_random({"noiseprint_weights (the frozen noise extractor)": frozen and noiseprint_weights is None,
                           "noise_encoder_weights (the frozen noise MiT)": not noise_to_decoder and noise_encoder_weights is None},
                          random_init)
    if frozen:
        network.noise_extractor.freeze()
    return NFAViTDetector(network, num_classes, input_divisor=32, single_logit=single_logit)


def _refuse_frozen_random(missing: dict[str, bool], random_init: bool) -> None:
    """A frozen part with random weights never learns: an error unless ``random_init`` says it is
    meant (or a checkpoint's state dict is about to replace every weight)."""
    names = [name for name, is_missing in missing.items() if is_missing]
    if names and not (random_init or weights_follow_active()):
        raise ValueError(f"detector 'nfa_vit': frozen with random weights, missing {names}; pass those weights "
                         "(conf/gpu names them) or random_init=True if random frozen weights are meant")
