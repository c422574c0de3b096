"""MaskCLIP's paper settings (OpenSDI section 4-5) and the official code's options, on tiny
configs: the ViT-B/32 MAE default, deep (IVLP-style) prompts, the edge-loss weight, and that the
chosen settings are recorded with every checkpoint."""

from __future__ import annotations

import inspect

import pytest
import torch

from models.detectors import create_detector, detector_from_state, detector_state
from models.detectors.clip import VIT_L_14
from models.detectors.maskclip import PromptLearner, build_maskclip
from tests.models.test_detectors import TINY, TINY_CLIP

SMALL_MAE = {"img_size": 64, "embed_dim": 32, "depth": 2, "num_heads": 2}  # no patch size: the default's


def maskclip(**kwargs):
    settings = {**TINY["maskclip"], **kwargs}
    return create_detector("maskclip", 2, **settings)


def test_defaults_are_the_papers():
    defaults = {k: p.default for k, p in inspect.signature(build_maskclip).parameters.items()}
    assert defaults["mae_model"] == "vit_base_patch32_224"  # section 5: ImageNet ViT-B/32
    assert defaults["prompt_length"] == 10 and defaults["prompt_depth"] == 1
    assert defaults["edge_loss_weight"] == 1.0  # section 4: every loss weight is 1
    assert tuple(defaults["fpn_scales"]) == (0.5, 2.0, 4.0)
    # CLIP: OpenAI ViT-L/14 at 224 px when no checkpoint names another.
    vision = VIT_L_14["vision_config"]
    assert (vision["image_size"], vision["patch_size"], vision["hidden_size"], vision["num_hidden_layers"]) == (224, 14, 1024, 24)


def test_the_default_mae_has_32_pixel_patches():
    model = maskclip(mae_kwargs=SMALL_MAE)
    assert model.network.mae.patch_embed.patch_size == (32, 32)
    assert model.input_divisor == 64  # 2 patches: the 0.5x pyramid level pools the grid by 2
    logits = model(torch.rand(1, 3, 128, 128))
    assert logits.shape == (1, 2, 128, 128) and torch.isfinite(logits).all()


def test_deep_prompts_replace_the_context_at_each_prompted_layer():
    torch.manual_seed(0)
    model = maskclip(prompt_depth=2)
    clip, prompts = model.network.clip.module, model.network.prompts
    assert prompts.deep.shape == (1, 4, 32) and prompts.deep.requires_grad
    before = prompts(clip)
    with torch.no_grad():
        prompts.deep.add_(1.0)
    after = prompts(clip)
    assert not torch.allclose(before, after)  # the layer-2 context reaches the EOS embedding
    after.sum().backward()
    assert prompts.deep.grad is not None and prompts.deep.grad.abs().sum() > 0
    assert prompts.context.grad.abs().sum() > 0  # the first-layer context still matters
    assert maskclip().network.prompts.deep is None  # depth 1: the shallow prompt only
    with pytest.raises(ValueError, match="exceeds"):
        maskclip(prompt_depth=3)(torch.rand(1, 3, 64, 64))  # the tiny text tower has 2 layers
    with pytest.raises(ValueError, match="depth"):
        PromptLearner(2, 4, 32, 0, 1, depth=0)


def test_edge_loss_weight_scales_the_edge_term():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 16:40, 20:44] = 1
    label = torch.tensor([1, 1])
    totals = {}
    for weight in (0.0, 1.0, 20.0):
        torch.manual_seed(0)
        model = maskclip(edge_loss_weight=weight).eval()
        with torch.no_grad():
            totals[weight], parts = model.loss(model(x, return_outputs=True), target, label)
    assert parts["edge"] > 0
    torch.testing.assert_close(totals[20.0] - totals[0.0], 20 * parts["edge"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(totals[1.0] - totals[0.0], parts["edge"], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="edge_loss_weight"):
        maskclip(edge_loss_weight=-1)


def test_settings_are_recorded_and_rebuild_the_same_network():
    model = maskclip(prompt_depth=2, edge_loss_weight=20.0).eval()
    assert model.config["mae_model"] == "vit_base_patch32_224"
    assert model.config["prompt_depth"] == 2 and model.config["edge_loss_weight"] == 20.0
    state, config = detector_state(model)
    rebuilt = detector_from_state(state, config).eval()
    assert rebuilt.edge_loss_weight == 20.0 and rebuilt.network.prompts.deep is not None
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_the_opensdi_training_conf_states_the_papers_settings():
    import yaml
    from pathlib import Path

    train = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf" / "opensdi" / "parameters_train.yml").read_text())["train"]
    kwargs = train["models"]["maskclip"]
    assert set(kwargs) <= set(inspect.signature(build_maskclip).parameters)  # every key is a real argument
    assert kwargs["mae_model"] == "vit_base_patch32_224" and kwargs["prompt_length"] == 10
    assert kwargs["edge_loss_weight"] == 1.0 and "large-patch14" in kwargs["clip_model"]
    trainer = train["trainer"]
    assert (trainer["batch_size"], trainer["lr"], trainer["weight_decay"], trainer["crop_size"]) == (64, 1e-4, 0.0, 512)
    assert trainer["steps"] == 20 * 200_000 // 64  # 20 epochs of 100k real + 100k fake
    augment = trainer["augment"]
    assert augment["hflip"] > 0 and augment["vflip"] > 0 and augment["blur_prob"] > 0 and augment["jpeg_prob"] > 0
    assert augment["resize_prob"] > 0
