"""A randomly initialised, tiny Stable Diffusion INPAINTING pipeline, built offline from configs.

It has the real architecture (9-channel UNet, KL VAE, CLIP text encoder, CLIP BPE tokenizer,
DDIM scheduler) at about 1.3 M parameters, is saved with ``save_pretrained`` and loaded
back through the very same ``from_pretrained`` path as a real checkpoint. Its output is whatever
the random weights produce (texture, not pictures): it exercises every code path of the
diffusion adapter on a CPU without any download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import GENERATORS
from .diffusion import StableDiffusionInpaintGenerator, quiet_progress_bars

_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"
_MAX_TOKENS = 77  # CLIP's context length; the pipeline pads every prompt to it


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP byte-level BPE uses for bytes 0..255, in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    codepoints = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in codepoints:
            codepoints[b] = 256 + extra
            extra += 1
    return [chr(codepoints[b]) for b in range(256)]


def build_offline_clip_tokenizer() -> Any:
    """A ``CLIPTokenizer`` with a byte-level vocabulary and no merges, built without any file.

    Every text tokenises to one token per UTF-8 byte (the last byte of each word carries
    ``</w>``), wrapped in start/end tokens. Vocabulary: 256 byte symbols (ids 0..255), the same
    with ``</w>`` (256..511), ``<|startoftext|>`` = 512, ``<|endoftext|>`` = 513 (also pad/unk).
    """
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": 256 + i for i, s in enumerate(symbols)})
    vocab[_BOS] = 512
    vocab[_EOS] = 513
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=_MAX_TOKENS)


def build_tiny_sd_inpaint(folder: str | Path, seed: int = 0) -> Path:
    """Build a random tiny SD inpainting pipeline and save it (safetensors) into ``folder``.

    Deterministic for a given ``seed``; the global torch RNG state is left untouched.
    Existing files in ``folder`` are overwritten.

    Returns:
        ``folder`` as a Path; it then holds ``model_index.json`` and one sub-folder per component.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    tokenizer = build_offline_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32,
            in_channels=9,  # noisy latents 4 + mask 1 + masked-image latents 4
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=(2, 4),
        )
        # Four levels, as in real SD: the latent is 1/8 of the image. With two levels a 256 px
        # image gives a 128x128 latent and the UNet's self-attention costs seconds per step.
        # Narrow full-resolution levels (8, 16 channels): the VAE runs at full resolution twice
        # per call (encode the masked image, decode) and dominated the time at 32 channels.
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 16, 32, 32),
            norm_num_groups=8,
            layers_per_block=1,
            latent_channels=4,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=_MAX_TOKENS,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    # Stable Diffusion 1.x's own scheduler settings, so the tiny model runs the same sampler code.
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with quiet_progress_bars():
        pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@GENERATORS.register("tiny-sd", description="random tiny SD inpainting pipeline (built offline); for tests and smoke runs",
                     pipeline="StableDiffusionInpaintPipeline", supported=True)
def build_tiny_sd(
    model: str,
    build_if_missing: bool = True,
    steps: int = 4,
    guidance_scale: float = 7.5,
    resolution: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    negative_prompt: str | None = None,
) -> StableDiffusionInpaintGenerator:
    """The tiny random pipeline in local folder ``model``, loaded like a real checkpoint.

    If ``model`` has no ``model_index.json`` it is first built there (seed 0) when
    ``build_if_missing`` is true.

    Raises:
        FileNotFoundError: the folder holds no pipeline and ``build_if_missing`` is false.
    """
    folder = Path(model)
    if not (folder / "model_index.json").is_file():
        if not build_if_missing:
            raise FileNotFoundError(f"no model_index.json in {folder}; build it with build_tiny_sd_inpaint")
        build_tiny_sd_inpaint(folder, seed=0)
    return StableDiffusionInpaintGenerator(
        str(folder),
        steps=steps,
        guidance_scale=guidance_scale,
        resolution=resolution,
        device=device,
        dtype=dtype,
        negative_prompt=negative_prompt,
        name="tiny-sd",
    )
