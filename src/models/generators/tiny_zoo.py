"""Tiny, randomly initialised versions of every diffusers architecture in the generator zoo,
built offline from configs and saved with ``save_pretrained``.

Each ``build_tiny_<family>(folder)`` writes a checkpoint folder that the family's adapter loads
through the very same ``from_pretrained`` path as the real checkpoint; the sizes follow the
dummy components of diffusers' own pipeline tests, with one change: every VAE keeps real
models' downsampling (4 levels, 1/8 of the image), so run-size rounding, latent packing and
mask resizing are exercised as on the real models. Tokenizers are built without files:
CLIP's byte-level BPE (``build_offline_clip_tokenizer``), a character-level T5 Unigram
vocabulary and a character-level BERT WordPiece vocabulary. Outputs are texture, not pictures.

Everything is deterministic for a given ``seed`` and leaves the global torch RNG untouched.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .diffusion import quiet_progress_bars
from .tiny import build_offline_clip_tokenizer, build_tiny_sd_inpaint

_CHARS = string.ascii_letters + string.digits + string.punctuation


def build_offline_t5_tokenizer() -> Any:
    """A ``T5Tokenizer`` (Unigram) over single characters, built without any file: <pad> = 0,
    </s> = 1, <unk> = 2, then "▁", letters, digits, punctuation and "▁"-prefixed letters."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in _CHARS] + [("\u2581" + c, -2.5) for c in string.ascii_lowercase]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_offline_bert_tokenizer() -> Any:
    """A ``BertTokenizer`` (WordPiece) over single characters, built without any file."""
    from transformers import BertTokenizer

    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_CHARS.lower(), *("##" + c for c in _CHARS.lower())]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def _tiny_t5_encoder(tokenizer: Any, d_model: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=37, num_layers=2,
                                   num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                                   decoder_start_token_id=0))


def _clip_text_config(tokenizer: Any, projection_dim: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=projection_dim,
                          hidden_act="gelu", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)


def _tiny_vae(latent_channels: int = 4, **extra: Any) -> Any:
    """An AutoencoderKL with real models' four levels (1/8 of the image) and narrow channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 32, 32),
                         norm_num_groups=8, layers_per_block=1, latent_channels=latent_channels, sample_size=64, **extra)


def _save(pipe: Any, folder: str | Path) -> Path:
    folder = Path(folder)
    with quiet_progress_bars():
        pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sd(folder: str | Path, inpainting: bool = False, seed: int = 0) -> Path:
    """A tiny Stable Diffusion pipeline: ``StableDiffusionInpaintPipeline`` layout with a 9-channel
    UNet when ``inpainting``, else a text-to-image ``StableDiffusionPipeline`` (4 channels)."""
    import torch
    from diffusers import (DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel

    from .tiny import build_tiny_sd_inpaint

    if inpainting:
        return build_tiny_sd_inpaint(folder, seed=seed)
    tokenizer = build_offline_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                    layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=(2, 4))
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    cls = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return _save(pipe, folder)


def build_tiny_sdxl(folder: str | Path, inpainting: bool = True, seed: int = 0) -> Path:
    """A tiny SDXL pipeline (two CLIP text encoders, text-time conditioning): 9-channel
    ``StableDiffusionXLInpaintPipeline`` when ``inpainting`` (as SDXL inpainting 0.1), else a
    4-channel ``StableDiffusionXLPipeline``."""
    import torch
    from diffusers import (EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = build_offline_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=9 if inpainting else 4, out_channels=4, block_out_channels=(32, 64),
            layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 size/crop ids x 8 + pooled text 32
            cross_attention_dim=64,  # the two encoders' hidden states, concatenated
        )
        vae = _tiny_vae()
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    components = dict(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
                      tokenizer_2=build_offline_clip_tokenizer(), unet=unet, scheduler=scheduler)
    if inpainting:
        pipe = StableDiffusionXLInpaintPipeline(**components, requires_aesthetics_score=False)
    else:
        pipe = StableDiffusionXLPipeline(**components)
    return _save(pipe, folder)


def build_tiny_sd3(folder: str | Path, seed: int = 0) -> Path:
    """A tiny SD3 pipeline (MMDiT transformer, two CLIP encoders + T5, 16-channel VAE), saved in
    the ``StableDiffusion3Pipeline`` layout that SD3 / SD3.5 checkpoints use."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer = build_offline_clip_tokenizer()
    t5_tokenizer = build_offline_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1,
                                            attention_head_dim=8, num_attention_heads=4, joint_attention_dim=64,
                                            caption_projection_dim=32, pooled_projection_dim=64)
        vae = _tiny_vae(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                        scaling_factor=1.5035)
        text_encoder = CLIPTextModelWithProjection(_clip_text_config(tokenizer))
        text_encoder_2 = CLIPTextModelWithProjection(_clip_text_config(tokenizer))
        text_encoder_3 = _tiny_t5_encoder(t5_tokenizer, d_model=64)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
        text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
        tokenizer_2=build_offline_clip_tokenizer(), text_encoder_3=text_encoder_3, tokenizer_3=t5_tokenizer,
    )
    return _save(pipe, folder)


def build_tiny_flux(folder: str | Path, fill: bool = True, seed: int = 0, guidance_embeds: bool | None = None) -> Path:
    """A tiny FLUX.1 pipeline (double/single-stream transformer, CLIP + T5, 16-channel VAE): the
    ``FluxFillPipeline`` layout when ``fill`` (transformer input 64 + 64 + 256 channels at 16
    latent channels, here 16 + 16 + 256 at 4), else the text-to-image ``FluxPipeline``.
    ``guidance_embeds`` (default: ``fill``) gives the transformer a distilled-guidance input, as
    FLUX.1-dev, Fill and Kontext have."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer = build_offline_clip_tokenizer()
    t5_tokenizer = build_offline_t5_tokenizer()
    latent_channels = 4
    packed = latent_channels * 4  # 2x2 patches
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=packed * 2 + 8 * 8 * 4 if fill else packed, out_channels=packed, num_layers=1,
            num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
            pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
            guidance_embeds=fill if guidance_embeds is None else guidance_embeds,
        )
        vae = _tiny_vae(latent_channels=latent_channels, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
        text_encoder = CLIPTextModel(_clip_text_config(tokenizer))
        text_encoder_2 = _tiny_t5_encoder(t5_tokenizer, d_model=32)
    cls = FluxFillPipeline if fill else FluxPipeline
    pipe = cls(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
               tokenizer=tokenizer, text_encoder_2=text_encoder_2, tokenizer_2=t5_tokenizer)
    return _save(pipe, folder)


def build_tiny_kandinsky22(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny Kandinsky 2.2: ``<folder>/prior`` (``KandinskyV22PriorPipeline``: CLIP text and
    image encoders + prior transformer) and ``<folder>/decoder-inpaint``
    (``KandinskyV22InpaintPipeline``: 9-channel image-conditioned UNet + MoVQ). Returns
    (decoder folder, prior folder)."""
    import torch
    from diffusers import (DDIMScheduler, KandinskyV22InpaintPipeline, KandinskyV22PriorPipeline, PriorTransformer,
                           UNet2DConditionModel, UnCLIPScheduler, VQModel)
    from transformers import CLIPImageProcessor, CLIPTextModelWithProjection, CLIPVisionConfig, \
        CLIPVisionModelWithProjection

    folder = Path(folder)
    tokenizer = build_offline_clip_tokenizer()
    embed = 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=embed, num_layers=1)
        # Random init sets clip_std to 0, which would zero every embedding.
        prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=embed, image_size=32, projection_dim=embed, intermediate_size=37, num_attention_heads=4,
            num_channels=3, num_hidden_layers=2, patch_size=8))
        text_encoder = CLIPTextModelWithProjection(_clip_text_config(tokenizer, projection_dim=embed))
        unet = UNet2DConditionModel(
            in_channels=9, out_channels=8, addition_embed_type="image",
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
            encoder_hid_dim=embed, encoder_hid_dim_type="image_proj", cross_attention_dim=32, attention_head_dim=4,
            resnet_time_scale_shift="scale_shift", class_embed_type=None,
        )
        movq = VQModel(block_out_channels=[32, 32, 32, 32], down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
                       up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3, in_channels=3, latent_channels=4,
                       layers_per_block=1, norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12, out_channels=3,
                       vq_embed_dim=4)
    prior_pipe = KandinskyV22PriorPipeline(
        prior=prior, image_encoder=image_encoder, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000,
                                  clip_sample=True, clip_sample_range=10.0),
        image_processor=CLIPImageProcessor(crop_size=32, size=32, do_center_crop=True, do_normalize=True, do_resize=True,
                                           image_mean=[0.48145466, 0.4578275, 0.40821073],
                                           image_std=[0.26862954, 0.26130258, 0.27577711], resample=3),
    )
    decoder = KandinskyV22InpaintPipeline(
        unet=unet, movq=movq,
        scheduler=DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.00085, beta_end=0.012,
                                clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
                                thresholding=False),
    )
    return _save(decoder, folder / "decoder-inpaint"), _save(prior_pipe, folder / "prior")


def build_tiny_hunyuandit(folder: str | Path, seed: int = 0) -> Path:
    """A tiny HunyuanDiT pipeline (DiT with two text streams: a BERT-style CLIP and mT5; 4-channel VAE)."""
    import torch
    from diffusers import DDPMScheduler, HunyuanDiT2DModel, HunyuanDiTPipeline
    from transformers import BertConfig, BertModel

    tokenizer = build_offline_bert_tokenizer()
    t5_tokenizer = build_offline_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = HunyuanDiT2DModel(sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8,
                                        num_attention_heads=3, in_channels=4, cross_attention_dim=32,
                                        cross_attention_dim_t5=32, pooled_projection_dim=16, hidden_size=24,
                                        activation_fn="gelu-approximate")
        vae = _tiny_vae()
        text_encoder = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=37, max_position_embeddings=128))
        text_encoder_2 = _tiny_t5_encoder(t5_tokenizer, d_model=32)
    pipe = HunyuanDiTPipeline(transformer=transformer.eval(), vae=vae.eval(), scheduler=DDPMScheduler(),
                              text_encoder=text_encoder, tokenizer=tokenizer, text_encoder_2=text_encoder_2,
                              tokenizer_2=t5_tokenizer, safety_checker=None, feature_extractor=None,
                              requires_safety_checker=False)
    return _save(pipe, folder)


def build_tiny_kolors(folder: str | Path, seed: int = 0) -> Path:
    """A tiny Kolors pipeline (SDXL-style UNet conditioned on a ChatGLM text encoder). The ChatGLM
    tokenizer is a sentencepiece model trained here on a few characters; needs ``sentencepiece``."""
    import io

    import sentencepiece
    import torch
    from diffusers import EulerDiscreteScheduler, KolorsPipeline, UNet2DConditionModel
    from diffusers.pipelines.kolors import ChatGLMModel, ChatGLMTokenizer
    from diffusers.pipelines.kolors.text_encoder import ChatGLMConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter([string.ascii_lowercase, string.digits, "a photo of a red balloon"] * 4),
        model_writer=model, vocab_size=40, model_type="char", character_coverage=1.0, bos_id=1, eos_id=2, unk_id=0,
        pad_id=-1, minloglevel=2,
    )
    vocab_file = folder / "spm-tokenizer.model"
    vocab_file.write_bytes(model.getvalue())
    tokenizer = ChatGLMTokenizer(vocab_file=str(vocab_file))
    hidden = 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = ChatGLMModel(ChatGLMConfig(num_layers=1, padded_vocab_size=64, hidden_size=hidden,
                                                  ffn_hidden_size=16, kv_channels=4, num_attention_heads=2,
                                                  seq_length=256, multi_query_attention=True, multi_query_group_num=1,
                                                  original_rope=True))
        # ChatGLM builds its layers with torch's skip_init (uninitialised memory): set every weight.
        with torch.no_grad():
            for name, parameter in text_encoder.named_parameters():
                if "norm" in name:
                    parameter.fill_(1.0)
                else:
                    parameter.normal_(0.0, 0.02)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + hidden, cross_attention_dim=hidden,
        )
        vae = _tiny_vae()
    pipe = KolorsPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                          scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                                           beta_schedule="scaled_linear", timestep_spacing="leading"),
                          image_encoder=None, feature_extractor=None)
    _save(pipe, folder)
    vocab_file.unlink()
    return folder


def build_tiny_deepfloyd_if(folder: str | Path, base_size: int = 16, sr_size: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """A tiny DeepFloyd IF: ``<folder>/stage-1`` (``IFInpaintingPipeline``: T5 + pixel UNet at
    ``base_size``) and ``<folder>/stage-2`` (``IFInpaintingSuperResolutionPipeline``: noise-level
    conditioned pixel UNet at ``sr_size``, saved without a text encoder as its adapter loads it).
    Returns (stage I folder, stage II folder)."""
    import torch
    from diffusers import DDPMScheduler, IFInpaintingPipeline, IFInpaintingSuperResolutionPipeline, UNet2DConditionModel

    folder = Path(folder)
    tokenizer = build_offline_t5_tokenizer()

    def scheduler() -> Any:
        return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", beta_start=0.0001,
                             beta_end=0.02, thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.0,
                             prediction_type="epsilon", variance_type="learned_range")

    common = dict(layers_per_block=1, block_out_channels=[32, 64],
                  down_block_types=["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
                  mid_block_type="UNetMidBlock2DSimpleCrossAttn",
                  up_block_types=["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"], out_channels=6,
                  cross_attention_dim=32, encoder_hid_dim=32, attention_head_dim=8, addition_embed_type="text",
                  addition_embed_type_num_heads=2, cross_attention_norm="group_norm",
                  resnet_time_scale_shift="scale_shift", act_fn="gelu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = _tiny_t5_encoder(tokenizer, d_model=32)
        base_unet = UNet2DConditionModel(sample_size=base_size, in_channels=3, **common)
        sr_unet = UNet2DConditionModel(sample_size=sr_size, in_channels=6, class_embed_type="timestep",
                                       mid_block_scale_factor=1.414, time_embedding_act_fn="gelu",
                                       time_embedding_dim=32, **common)
    stage_1 = IFInpaintingPipeline(tokenizer=tokenizer, text_encoder=text_encoder, unet=base_unet, scheduler=scheduler(),
                                   safety_checker=None, feature_extractor=None, watermarker=None,
                                   requires_safety_checker=False)
    stage_2 = IFInpaintingSuperResolutionPipeline(
        tokenizer=tokenizer, text_encoder=None, unet=sr_unet, scheduler=scheduler(),
        image_noising_scheduler=DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                              beta_start=0.0001, beta_end=0.02),
        safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False,
    )
    return _save(stage_1, folder / "stage-1"), _save(stage_2, folder / "stage-2")


def _randomise_zero_convs(branch: Any, generator: Any) -> None:
    # Released branches are trained; left at their zero init the tiny branch would change nothing
    # and a test could not tell whether its features reach the UNet.
    import torch

    convs = [*branch.brushnet_down_blocks, branch.brushnet_mid_block, *branch.brushnet_up_blocks]
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator) * 0.05)


def _save_tiny_brushnet(base: Path, out: Path, seed: int) -> Path:
    """A BrushNet (attention-free, as the released SD 1.5 / SDXL ones) shaped after ``base``'s UNet,
    saved in the released layout (``config.json`` + ``diffusion_pytorch_model.safetensors``)."""
    import torch
    from diffusers import UNet2DConditionModel

    from .brushnet_model import BrushNetModel

    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        branch = BrushNetModel.from_unet_config(unet.config, cross_attention=False)
    _randomise_zero_convs(branch, torch.Generator().manual_seed(seed + 2))
    with quiet_progress_bars():
        branch.save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_brushnet(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny SD 1.5-style text-to-image base (``<folder>/base``) and a BrushNet checkpoint for its
    UNet (``<folder>/brushnet``, the released layout). Returns both folders."""
    folder = Path(folder)
    base = build_tiny_sd(folder / "base", inpainting=False, seed=seed)
    return base, _save_tiny_brushnet(base, folder / "brushnet", seed)


def build_tiny_powerpaint(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny base (``<folder>/base``) and a PowerPaint v2 ``PowerPaint_Brushnet`` folder in the
    released layout: ``diffusion_pytorch_model.safetensors`` (BrushNet_CA weights, no config, as
    the authors build the branch from the UNet) and ``pytorch_model.bin`` (the branch's CLIP text
    encoder with learned ``P_ctxt`` / ``P_shape`` / ``P_obj`` vectors). Returns both folders."""
    import safetensors.torch
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .brushnet import add_task_tokens
    from .brushnet_model import BrushNetModel

    folder = Path(folder)
    base = build_tiny_sd(folder / "base", inpainting=False, seed=seed)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    text_encoder = CLIPTextModel.from_pretrained(base / "text_encoder")
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        branch = BrushNetModel.from_unet_config(unet.config, cross_attention=True)
    _randomise_zero_convs(branch, generator)
    add_task_tokens(CLIPTokenizer.from_pretrained(base / "tokenizer"), text_encoder)
    with torch.no_grad():
        for vectors in text_encoder.embeddings.token_embedding.trainable_embeddings.values():
            vectors.copy_(torch.randn(vectors.shape, generator=generator))
    out = folder / "PowerPaint_Brushnet"
    out.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in branch.state_dict().items()},
                                str(out / "diffusion_pytorch_model.safetensors"))
    # Keys as in the release, saved with transformers 4 (``text_model.`` prefix).
    torch.save({"text_model." + key: value for key, value in text_encoder.state_dict().items()},
               out / "pytorch_model.bin")
    return base, out


def build_tiny_brushnet_sdxl(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny SDXL text-to-image base (``<folder>/base``) and an SDXL BrushNet for its UNet
    (``<folder>/brushnet``: SDXL's text-time embedding included, as the released SDXL BrushNet).
    Returns both folders."""
    folder = Path(folder)
    base = build_tiny_sdxl(folder / "base", inpainting=False, seed=seed)
    return base, _save_tiny_brushnet(base, folder / "brushnet", seed)
def build_tiny_qwen_image(folder: str | Path, edit: bool = False, seed: int = 0) -> Path:
    """A tiny Qwen-Image pipeline (MMDiT ``QwenImageTransformer2DModel``, a Qwen2.5-VL text
    encoder, the Wan-style ``AutoencoderKLQwenImage`` with the real model's 1/8 spatial
    downsampling), saved in the ``QwenImagePipeline`` layout of ``Qwen/Qwen-Image`` that
    ``QwenImageInpaintPipeline`` loads, or with ``edit`` in the ``QwenImageEditPipeline`` layout of
    ``Qwen/Qwen-Image-Edit`` (the same components plus a ``Qwen2VLProcessor``: the text encoder
    also sees the input image, here at 4..16 merged 28 px patches) that
    ``QwenImageEditInpaintPipeline`` loads. The tokenizer is the byte-level Qwen one of
    ``perception.tiny`` (Qwen-Image drops the first 34 tokens of its prompt template, -Edit the
    first 64: bytes here)."""
    import torch
    import transformers
    from diffusers import (AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageEditPipeline,
                           QwenImagePipeline, QwenImageTransformer2DModel)

    from ..perception.tiny import build_offline_qwen_tokenizer

    tokenizer = build_offline_qwen_tokenizer()
    z_dim, text_dim = 4, 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=z_dim * 4, out_channels=z_dim, num_layers=2,
                                                  attention_head_dim=16, num_attention_heads=2,
                                                  joint_attention_dim=text_dim, axes_dims_rope=(8, 4, 4))
        vae = AutoencoderKLQwenImage(base_dim=8, z_dim=z_dim, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                     temperal_downsample=[False, True, True], latents_mean=[0.0] * z_dim,
                                     latents_std=[1.0] * z_dim)
        text_encoder = transformers.Qwen2_5_VLForConditionalGeneration(transformers.Qwen2_5_VLConfig(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=16, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2,
                             rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 1e6}),
            vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=text_dim),
            image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
            video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
            vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
            vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        ))
    components = dict(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                      tokenizer=tokenizer, transformer=transformer)
    if not edit:
        return _save(QwenImagePipeline(**components), folder)
    processor = transformers.Qwen2VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28),
        tokenizer=tokenizer, video_processor=transformers.Qwen2VLVideoProcessor())
    return _save(QwenImageEditPipeline(**components, processor=processor), folder)


# Qwen3's chat template, reduced to what Z-Image renders: one user turn, then the assistant's turn
# (``enable_thinking=True`` adds nothing).
_QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_z_image(folder: str | Path, seed: int = 0) -> Path:
    """A tiny Z-Image pipeline (single-stream DiT ``ZImageTransformer2DModel``, a Qwen3 text
    encoder read at its second-to-last layer, a 16-channel FLUX-style VAE with the real 1/8
    downsampling), saved in the ``ZImagePipeline`` layout of ``Tongyi-MAI/Z-Image-Turbo`` that
    ``ZImageInpaintPipeline`` loads. The tokenizer is the byte-level Qwen one of ``perception.tiny``
    with a Qwen3-style chat template."""
    import torch
    import transformers
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    from ..perception.tiny import build_offline_qwen_tokenizer

    tokenizer = build_offline_qwen_tokenizer()
    tokenizer.chat_template = _QWEN3_CHAT_TEMPLATE
    text_dim = 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = ZImageTransformer2DModel(
            all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
            n_heads=2, n_kv_heads=2, qk_norm=True, cap_feat_dim=text_dim, axes_dims=[8, 4, 4], axes_lens=[256, 32, 32])
        # The pad tokens are created with torch.empty (uninitialised memory): give them values.
        with torch.no_grad():
            transformer.x_pad_token.normal_(0.0, 0.02)
            transformer.cap_pad_token.normal_(0.0, 0.02)
        vae = _tiny_vae(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159,
                        scaling_factor=0.3611)
        text_encoder = transformers.Qwen3Model(transformers.Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=16, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=512))
    pipe = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                          tokenizer=tokenizer, transformer=transformer)
    return _save(pipe, folder)


def build_tiny_chroma(folder: str | Path, seed: int = 0) -> Path:
    """A tiny Chroma pipeline (FLUX.1-schnell-derived transformer whose modulations come from a
    small "approximator" network instead of CLIP, a T5 text encoder, a 16-channel VAE; here 4
    latent channels with the real 1/8 downsampling), saved in the ``ChromaPipeline`` layout that
    ``ChromaInpaintPipeline`` loads."""
    import torch
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    t5_tokenizer = build_offline_t5_tokenizer()
    latent_channels = 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = ChromaTransformer2DModel(
            patch_size=1, in_channels=latent_channels * 4, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, axes_dims_rope=(4, 4, 8), approximator_num_channels=8,
            approximator_hidden_dim=32, approximator_layers=1)
        vae = _tiny_vae(latent_channels=latent_channels, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
        text_encoder = _tiny_t5_encoder(t5_tokenizer, d_model=32)
    pipe = ChromaPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                          tokenizer=t5_tokenizer, transformer=transformer)
    return _save(pipe, folder)


# Qwen3's template with ``enable_thinking=False`` (what FLUX.2 [klein] renders): the assistant turn
# opens with an empty thinking block.
_QWEN3_NO_THINKING_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)


def build_tiny_flux2_klein(folder: str | Path, distilled: bool = True, seed: int = 0) -> Path:
    """A tiny FLUX.2 [klein] pipeline (``Flux2Transformer2DModel`` without a guidance input, a
    ``Qwen3ForCausalLM`` text encoder with 28 layers so that the pipeline's default read-out layers
    9, 18 and 27 exist, an ``AutoencoderKLFlux2`` with the real 1/8 downsampling and 4 latent
    channels), saved in the ``Flux2KleinPipeline`` layout of ``black-forest-labs/FLUX.2-klein-4B``
    (``is_distilled: true``; ``distilled=False`` gives the undistilled [klein] base layout) that
    ``Flux2KleinInpaintPipeline`` loads."""
    import torch
    import transformers
    from diffusers import (AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline,
                           Flux2Transformer2DModel)

    from ..perception.tiny import build_offline_qwen_tokenizer

    tokenizer = build_offline_qwen_tokenizer()
    tokenizer.chat_template = _QWEN3_NO_THINKING_TEMPLATE
    latent_channels, text_dim = 4, 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = Flux2Transformer2DModel(
            patch_size=1, in_channels=latent_channels * 4, num_layers=1, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=3 * text_dim,  # three hidden layers, concatenated
            timestep_guidance_channels=32, axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False)
        vae = AutoencoderKLFlux2(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                                 up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 32, 32),
                                 norm_num_groups=8, layers_per_block=1, latent_channels=latent_channels, sample_size=64,
                                 use_quant_conv=False, use_post_quant_conv=False)
        text_encoder = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=16, num_hidden_layers=28,
            num_attention_heads=2, num_key_value_heads=2, head_dim=8, max_position_embeddings=512,
            tie_word_embeddings=True))
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, transformer=transformer, is_distilled=distilled)
    return _save(pipe, folder)


# Tiny GLIDE: the published configs shrunk (widths, depth, text context, vocabulary); keys keep the
# published layout, so the generator loads them through the same strict path as the real files.
TINY_GLIDE_BASE = {"image_size": 16, "model_channels": 16, "num_res_blocks": 1, "channel_mult": [1, 2],
                   "attention_resolutions": [8], "num_head_channels": 16, "text_ctx": 16, "xf_width": 16,
                   "xf_layers": 1, "xf_heads": 2, "norm_groups": 8}
# The upsampler keeps attention at 1/8 of the run size (the published one: 32 px of 256), so that a
# 256 px run stays cheap.
TINY_GLIDE_UPSAMPLE = {**TINY_GLIDE_BASE, "image_size": 64, "channel_mult": [1, 1, 1, 2], "attention_resolutions": [8],
                       "super_res": True}


def build_tiny_glide_tokenizer(folder: str | Path) -> Path:
    """GPT-2-format BPE files (``encoder.json.gz``, ``vocab.bpe.gz``) for a tiny vocabulary: the
    256 byte symbols, a few merges ("Ġa", "ca", "cat", "Ġcat", ...), then ``<|endoftext|>`` last
    (GLIDE's padding token is the last id)."""
    import gzip
    import json

    from tokenizers.pre_tokenizers import ByteLevel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = sorted(ByteLevel.alphabet())
    merges = [("Ġ", "a"), ("c", "a"), ("ca", "t"), ("Ġ", "cat"), ("Ġ", "r"), ("e", "d"), ("Ġr", "ed")]
    vocab = {s: i for i, s in enumerate(symbols + ["".join(m) for m in merges] + ["<|endoftext|>"])}
    with gzip.open(folder / "encoder.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(vocab, handle)
    with gzip.open(folder / "vocab.bpe.gz", "wt", encoding="utf-8") as handle:
        handle.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def build_tiny_glide(folder: str | Path, seed: int = 0) -> dict[str, Any]:
    """Tiny random GLIDE base-inpaint and upsample-inpaint state dicts (``torch.save``, OpenAI's
    format) plus tokenizer files under ``folder``. Returns the ``glide-inpaint`` kwargs that load
    them (paths and the two config overrides)."""
    import torch

    from .glide_model import GlideUNet, base_inpaint_config, upsample_inpaint_config

    folder = Path(folder)
    tokenizer = build_tiny_glide_tokenizer(folder / "tokenizer")
    from .glide import GlideTokenizer

    n_vocab = GlideTokenizer(tokenizer).n_vocab
    kwargs: dict[str, Any] = {"tokenizer": str(tokenizer)}
    for key, config, overrides in (("base", base_inpaint_config(), TINY_GLIDE_BASE),
                                   ("upsample", upsample_inpaint_config(), TINY_GLIDE_UPSAMPLE)):
        overrides = {**overrides, "n_vocab": n_vocab}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GlideUNet(config.with_overrides(overrides))
        path = folder / f"{key}_inpaint.pt"
        torch.save(model.state_dict(), path)
        kwargs[f"{key}_model"] = str(path)
        kwargs[f"{key}_config"] = overrides
    return kwargs


def build_tiny_amused(folder: str | Path, seed: int = 0) -> Path:
    """A tiny aMUSEd pipeline (masked-token ``UVit2DModel`` with the 512 model's 2x token
    down/upsampling, a VQ-GAN ``VQModel`` with the real five levels (1/16 of the image) and a
    32-entry codebook, a CLIP text encoder with projection), saved in the ``AmusedPipeline`` layout
    of ``amused/amused-512`` that ``AmusedInpaintPipeline`` loads."""
    import torch
    from diffusers import AmusedPipeline, AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextModelWithProjection

    tokenizer = build_offline_clip_tokenizer()
    codebook, embed = 32, 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = UVit2DModel(
            hidden_size=32, cond_embed_dim=32, micro_cond_encode_dim=2, micro_cond_embed_dim=10,
            encoder_hidden_size=32, vocab_size=codebook + 1, codebook_size=codebook, in_channels=embed,
            block_out_channels=embed, num_res_blocks=1, downsample=True, upsample=True, block_num_heads=1,
            num_hidden_layers=1, num_attention_heads=2, intermediate_size=16, sample_size=2)
        vqvae = VQModel(act_fn="silu", block_out_channels=[8, 16, 16, 32, 32],
                        down_block_types=["DownEncoderBlock2D"] * 5, up_block_types=["UpDecoderBlock2D"] * 5,
                        in_channels=3, out_channels=3, latent_channels=embed, layers_per_block=1, norm_num_groups=8,
                        num_vq_embeddings=codebook, sample_size=32, mid_block_add_attention=False,
                        lookup_from_codebook=True)
        text_encoder = CLIPTextModelWithProjection(_clip_text_config(tokenizer))
    pipe = AmusedPipeline(vqvae=vqvae, tokenizer=tokenizer, text_encoder=text_encoder, transformer=transformer,
                          scheduler=AmusedScheduler(mask_token_id=codebook))
    return _save(pipe, folder)


def build_tiny_lora(sdxl_folder: str | Path, path: str | Path, seed: int = 0) -> Path:
    """A kohya-format LoRA (``lora_unet_*`` down / up weights and alphas, Hyper-SD's layout) over
    attention and projection layers of the tiny SDXL UNet saved in ``sdxl_folder``; written to
    ``path`` (safetensors). Deterministic for ``seed``."""
    import safetensors.torch
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(Path(sdxl_folder) / "unet")
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in unet.named_modules():
        if name.endswith(("attn1.to_q", "attn2.to_v", "attn1.to_out.0", "proj_in")):
            weight = module.weight
            key = "lora_unet_" + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(4, *weight.shape[1:], generator=generator)
            tensors[f"{key}.lora_up.weight"] = torch.randn(weight.shape[0], 4, *([1] * (weight.ndim - 2)), generator=generator)
            tensors[f"{key}.alpha"] = torch.tensor(2.0)
    safetensors.torch.save_file(tensors, str(path))
    return Path(path)


# name -> builder(root, zoo): writes the tiny checkpoint under ``root`` and returns what the zoo
# entry's kwargs name (a folder, a file, or a tuple of them). ``zoo`` builds a requirement first.
# (LaMa / MAT's TorchScript stand-ins live in models.tiny_brgen, which imports this module: a
# caller adds them with ``TinyZoo(root, extra=...)``.)
TINY_BUILDERS: dict[str, Callable[[Path, "TinyZoo"], Any]] = {
    "sd-inpaint": lambda root, zoo: build_tiny_sd_inpaint(root / "sd-inpaint"),
    "sd": lambda root, zoo: build_tiny_sd(root / "sd", inpainting=False),
    "sdxl-inpaint": lambda root, zoo: build_tiny_sdxl(root / "sdxl-inpaint"),
    "sdxl": lambda root, zoo: build_tiny_sdxl(root / "sdxl", inpainting=False),
    "sd3": lambda root, zoo: build_tiny_sd3(root / "sd3"),
    "flux-fill": lambda root, zoo: build_tiny_flux(root / "flux-fill"),
    "flux": lambda root, zoo: build_tiny_flux(root / "flux", fill=False),
    # FLUX.1 dev / Kontext: the text-to-image transformer with distilled guidance.
    "flux-guided": lambda root, zoo: build_tiny_flux(root / "flux-guided", fill=False, guidance_embeds=True),
    "qwen-image": lambda root, zoo: build_tiny_qwen_image(root / "qwen-image"),
    "qwen-image-edit": lambda root, zoo: build_tiny_qwen_image(root / "qwen-image-edit", edit=True),
    "z-image": lambda root, zoo: build_tiny_z_image(root / "z-image"),
    "chroma": lambda root, zoo: build_tiny_chroma(root / "chroma"),
    "amused": lambda root, zoo: build_tiny_amused(root / "amused"),
    "flux2-klein": lambda root, zoo: build_tiny_flux2_klein(root / "flux2-klein"),
    "flux2-klein-base": lambda root, zoo: build_tiny_flux2_klein(root / "flux2-klein-base", distilled=False),
    "kandinsky": lambda root, zoo: build_tiny_kandinsky22(root / "kandinsky"),
    "hunyuandit": lambda root, zoo: build_tiny_hunyuandit(root / "hunyuandit"),
    "kolors": lambda root, zoo: build_tiny_kolors(root / "kolors"),
    "if": lambda root, zoo: build_tiny_deepfloyd_if(root / "if"),
    "glide": lambda root, zoo: build_tiny_glide(root / "glide"),
    "lora": lambda root, zoo: build_tiny_lora(zoo("sdxl-inpaint"), root / "tiny-lora.safetensors"),
    "brushnet": lambda root, zoo: build_tiny_brushnet(root / "brushnet"),
    "powerpaint": lambda root, zoo: build_tiny_powerpaint(root / "powerpaint"),
    "brushnet-sdxl": lambda root, zoo: build_tiny_brushnet_sdxl(root / "brushnet-sdxl"),
}


class TinyZoo:
    """Tiny checkpoints under ``root``, built on first request and once (``TINY_BUILDERS``):
    ``zoo("sdxl-inpaint")`` -> the folder. ``prebuilt`` marks names whose files already exist
    (a resumed build), so a requirement is not rebuilt; ``extra`` adds builders (same signature).

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """

    def __init__(self, root: str | Path, prebuilt: dict[str, Any] | None = None,
                 extra: dict[str, Callable[[Path, TinyZoo], Any]] | None = None):
        self.root = Path(root)
        self.built: dict[str, Any] = dict(prebuilt or {})
        self.builders = {**TINY_BUILDERS, **(extra or {})}

    def __call__(self, name: str) -> Any:
        if name not in self.built:
            if name not in self.builders:
                raise KeyError(f"no tiny builder named {name!r}; known: {sorted(self.builders)}")
            self.root.mkdir(parents=True, exist_ok=True)
            self.built[name] = self.builders[name](self.root, self)
        return self.built[name]
