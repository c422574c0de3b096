"""GLIDE inpainting (``glide-inpaint``): our networks against the published checkpoint layout,
the tokenizer, the diffusion and the two-stage sampler on tiny random models saved in OpenAI's
format (``torch.save(state_dict)``) and loaded through the generator's strict path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.generators import create_generator
from models.generators.glide import (
    GlideDiffusion,
    GlideTokenizer,
    beta_schedule,
    load_glide_unet,
    respaced_timesteps,
)
from models.generators.glide_model import GlideUNet, base_inpaint_config, upsample_inpaint_config
from models.generators.tiny_zoo import build_tiny_glide

FAST = {"size": 64, "base_respacing": "3", "upsample_respacing": "2"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is far faster on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_glide(tmp_path_factory.mktemp("glide"))


@pytest.fixture(scope="module")
def generator(tiny):
    return create_generator("glide-inpaint", **tiny, **FAST)


@pytest.fixture()
def photo():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)  # not square, not the run size
    mask = np.zeros(image.shape[:2], bool)
    mask[10:30, 20:50] = True
    return image, mask


def _state_shapes(config):
    with torch.device("meta"):
        model = GlideUNet(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, model


def test_full_size_models_have_the_published_parameter_count_and_names():
    # Totals people print when they run OpenAI's code on the released text2im checkpoints
    # (e.g. the glide-finetune training script's log: "base Number of parameters: 385030726";
    # a GLIDE API's README: upsample 398361286); the inpainting models differ only by the first
    # convolution's 4 extra input channels (text2im_model.py: in_channels * 2 + 1, * 3 + 1).
    for config, total in ((base_inpaint_config(), 385_030_726), (upsample_inpaint_config(), 398_361_286)):
        _, plain = _state_shapes(type(config)(**{**config.__dict__, "inpaint": False}))
        _, inpaint = _state_shapes(config)
        assert sum(p.numel() for p in plain.parameters()) == total
        assert sum(p.numel() for p in inpaint.parameters()) == total + 4 * 192 * 3 * 3
    # Names and shapes read off OpenAI's unet.py (ResBlock in_layers / emb_layers / out_layers /
    # skip_connection, AttentionBlock norm / qkv / encoder_kv / proj_out, UNetModel input_blocks /
    # middle_block / output_blocks / out), text2im_model.py (token / positional / padding
    # embeddings, transformer_proj, final_ln) and xf.py (resblocks.N.attn.c_qkv, mlp.c_fc, ln_1).
    base, _ = _state_shapes(base_inpaint_config())
    expected_base = {
        "time_embed.0.weight": (768, 192), "time_embed.2.weight": (768, 768),
        "input_blocks.0.0.weight": (192, 7, 3, 3),
        "input_blocks.4.0.emb_layers.1.weight": (384, 768),  # level 0 -> 1 downsampling res block
        "input_blocks.5.0.skip_connection.weight": (384, 192, 1, 1),
        "input_blocks.5.1.qkv.weight": (1152, 384, 1), "input_blocks.5.1.encoder_kv.weight": (768, 512, 1),
        "input_blocks.15.1.proj_out.weight": (768, 768, 1),
        "middle_block.0.out_layers.3.weight": (768, 768, 3, 3), "middle_block.1.norm.weight": (768,),
        "output_blocks.0.0.in_layers.2.weight": (768, 1536, 3, 3),
        "output_blocks.3.2.in_layers.2.weight": (768, 768, 3, 3),  # the upsampling res block
        "output_blocks.15.0.skip_connection.weight": (192, 384, 1, 1),
        "out.0.weight": (192,), "out.2.weight": (6, 192, 3, 3),
        "token_embedding.weight": (50257, 512), "positional_embedding": (128, 512),
        "padding_embedding": (128, 512), "transformer_proj.weight": (768, 512), "final_ln.weight": (512,),
        "transformer.resblocks.15.attn.c_qkv.weight": (1536, 512),
        "transformer.resblocks.0.mlp.c_fc.weight": (2048, 512),
        "transformer.resblocks.0.ln_1.weight": (512,),
    }
    assert {k: base[k] for k in expected_base} == expected_base
    assert len(base) == len({k for k in base if k.startswith(("input_blocks", "middle_block", "output_blocks",
                                                              "time_embed", "out.", "transformer", "token_",
                                                              "positional_", "padding_", "final_ln"))})
    assert max(int(k.split(".")[1]) for k in base if k.startswith("input_blocks")) == 15
    up, _ = _state_shapes(upsample_inpaint_config())
    expected_up = {"input_blocks.0.0.weight": (192, 10, 3, 3), "input_blocks.10.1.encoder_kv.weight": (768, 512, 1),
                   "output_blocks.17.0.in_layers.2.weight": (192, 384, 3, 3), "out.2.weight": (6, 192, 3, 3)}
    assert {k: up[k] for k in expected_up} == expected_up
    assert max(int(k.split(".")[1]) for k in up if k.startswith("input_blocks")) == 17


def test_tokenizer_is_lower_cased_byte_level_bpe_padded_with_the_last_id(tiny):
    tokenizer = GlideTokenizer(tiny["tokenizer"])
    vocab = tokenizer._bpe.get_vocab()
    assert tokenizer.encode("A Cat, RED!") == [vocab[t] for t in ("a", "Ġcat", ",", "Ġred", "!")]
    tokens, mask = tokenizer.padded("a cat", 6)
    assert tokens[2:] == [tokenizer.end_token] * 4 and tokenizer.end_token == tokenizer.n_vocab - 1
    assert mask == [True, True, False, False, False, False]
    assert tokenizer.padded("", 3) == ([tokenizer.end_token] * 3, [False] * 3)  # the unconditional input
    assert len(tokenizer.padded("a cat " * 20, 5)[0]) == 5


def test_tokenizer_folder_without_files_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        GlideTokenizer(tmp_path)


def test_schedules_and_respacing_follow_openais_definitions():
    cosine = beta_schedule("squaredcos_cap_v2", 1000)
    alpha_bar = np.cumprod(1 - cosine)

    def f(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    assert np.allclose(alpha_bar[:900], [f((i + 1) / 1000) / f(0) for i in range(900)], rtol=1e-9)
    assert cosine.max() == pytest.approx(0.999)  # capped at the end of the process
    linear = beta_schedule("linear", 1000)
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    hundred = respaced_timesteps(1000, "100")
    assert len(hundred) == 100 and hundred[0] == 0 and hundred[-1] == 999
    fast = respaced_timesteps(1000, "fast27")
    assert len(fast) == 27 and 999 not in fast and 997 in fast
    assert respaced_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    with pytest.raises(ValueError):
        respaced_timesteps(10, "20")
    with pytest.raises(ValueError, match="at least 2"):
        GlideDiffusion("linear", "1")
    with pytest.raises(ValueError, match="schedule"):
        beta_schedule("quadratic")
    # Respacing keeps the cumulative alphas at the kept steps (the same marginals q(x_t | x_0)).
    spaced = GlideDiffusion("squaredcos_cap_v2", "100")
    assert np.allclose(np.cumprod(1 - spaced.betas), alpha_bar[spaced.timesteps])


def test_last_step_returns_the_known_pixels_exactly_and_the_rest_clipped():
    diffusion = GlideDiffusion("linear", "5")
    generator = torch.Generator().manual_seed(0)
    x, eps, known = (torch.randn(1, 3, 8, 8, generator=generator) * 3 for _ in range(3))
    keep = torch.zeros(1, 1, 8, 8)
    keep[..., :4] = 1
    out = diffusion.step(0, x, eps, torch.zeros_like(x), known.clamp(-1, 1), keep, None)
    assert torch.allclose(out[..., :4], known.clamp(-1, 1)[..., :4], atol=1e-6)
    assert out.abs().max() <= 1 + 1e-6 and not torch.allclose(out[..., 4:], known.clamp(-1, 1)[..., 4:])


def test_generator_loads_the_saved_state_dicts_strictly_and_inpaints(generator, photo):
    image, mask = photo
    out = generator.inpaint(image, mask, "a red cat", seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).mean() > 0.5
    assert np.array_equal(out, generator.inpaint(image, mask, "a red cat", seed=1))  # deterministic per seed
    first, second = generator.inpaint_candidates(image, mask, "a red cat", [1, 2])
    assert np.array_equal(first, out)  # a seed's output does not depend on the rest of the batch
    assert not np.array_equal(first, second)
    assert not np.array_equal(out, generator.inpaint(image, mask, "a cat", seed=1))  # the text is used
    assert generator.describe()["model"].endswith("base_inpaint.pt")


def test_guidance_scale_changes_the_base_stage(tiny, generator, photo):
    image, mask = photo
    unguided = create_generator("glide-inpaint", **tiny, **FAST, guidance_scale=1.0)
    assert not np.array_equal(generator.inpaint(image, mask, "a cat", 0), unguided.inpaint(image, mask, "a cat", 0))


def test_runs_at_glides_256_output_size(tiny):
    image = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    mask = np.zeros((256, 256), bool)
    mask[100:180, 40:120] = True
    generator = create_generator("glide-inpaint", **tiny, size=256, base_respacing="2", upsample_respacing="2")
    out = generator.inpaint(image, mask, "a cat", seed=0)
    assert out.shape == image.shape and np.array_equal(out[~mask], image[~mask]) and (out[mask] != image[mask]).any()


def test_a_checkpoint_that_does_not_match_the_config_is_refused_naming_the_file(tiny, tmp_path):
    state = torch.load(tiny["base_model"], weights_only=True)
    config = base_inpaint_config().with_overrides(tiny["base_config"])
    del state["out.2.bias"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"(?s)broken\.pt.*out\.2\.bias"):
        load_glide_unet(tmp_path / "broken.pt", config)
    with pytest.raises(ValueError, match="unknown GLIDE config keys"):
        base_inpaint_config().with_overrides({"channels": 3})
    with pytest.raises(FileNotFoundError, match="base_model"):
        create_generator("glide-inpaint", **{**tiny, "base_model": str(tmp_path / "missing.pt")})
    with pytest.raises(ValueError, match="tokens"):  # a tokenizer of another vocabulary
        create_generator("glide-inpaint", **{**tiny, "base_config": {**tiny["base_config"], "n_vocab": 10}})


def test_fp16_mode_converts_like_openais_and_stays_close(tiny):
    config = base_inpaint_config().with_overrides(tiny["base_config"])
    model = GlideUNet(config)
    model.load_state_dict(torch.load(tiny["base_model"], weights_only=True))
    model.eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    tokens, mask = torch.zeros(1, config.text_ctx, dtype=torch.long), torch.ones(1, config.text_ctx, dtype=torch.bool)
    keep = torch.ones(1, 1, 16, 16)
    with torch.no_grad():
        reference = model(x, torch.tensor([10]), model.encode_text(tokens, mask), x, keep)
        model.to_fp16()
        half = model(x, torch.tensor([10]), model.encode_text(tokens, mask), x, keep)
    assert model.input_blocks[0][0].weight.dtype == torch.float16 and model.out[2].weight.dtype == torch.float32
    assert model.input_blocks[1][0].in_layers[0].weight.dtype == torch.float32  # norms stay float32
    assert half.dtype == torch.float32 and torch.allclose(half, reference, atol=0.05)
