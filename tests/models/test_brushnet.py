"""BrushNet and PowerPaint v2 (models.generators.brushnet) on tiny random checkpoints.

The checkpoints are written in the released layouts (a BrushNet folder with ``config.json`` +
``diffusion_pytorch_model.safetensors``; PowerPaint's ``PowerPaint_Brushnet`` folder with the
branch weights and the task-token text encoder in ``pytorch_model.bin``) and loaded back through
the same ``from_pretrained`` path a published checkpoint takes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.generators import create_generator, tiny_zoo
from models.generators.brushnet import (
    BrushNetInpaintPipeline,
    brushnet_residuals_added,
    expand_task_tokens,
    powerpaint_task_prompts,
)
from models.generators.brushnet_model import BrushNetModel

SIZE = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("brushnet")
    return {"brushnet": tiny_zoo.build_tiny_brushnet(root / "bn"), "powerpaint": tiny_zoo.build_tiny_powerpaint(root / "pp"),
            "brushnet-sdxl": tiny_zoo.build_tiny_brushnet_sdxl(root / "bnxl")}


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mask():
    region = np.zeros((SIZE, SIZE), bool)
    region[16:48, 20:44] = True
    return region


def test_default_config_has_the_published_sd15_layout():
    # The released SD 1.5 checkpoints: 9 input channels, 12 down / 1 mid / 15 up zero convs,
    # an attention-free two-resnet mid block, and the authors' parameter names.
    with torch.device("meta"):
        model = BrushNetModel(cross_attention_dim=768)
    assert model.conv_in_condition.weight.shape == (320, 9, 3, 3)
    assert len(model.brushnet_down_blocks) == 12 and len(model.brushnet_up_blocks) == 15
    keys = set(model.state_dict())
    assert {"brushnet_mid_block.weight", "mid_block.resnets.1.conv2.weight", "time_embedding.linear_1.weight",
            "down_blocks.3.resnets.1.conv2.weight", "up_blocks.0.resnets.2.conv1.weight"} <= keys
    assert not any("attentions" in key for key in keys)


def test_unsupported_configs_fail_clearly():
    small = dict(block_out_channels=(32, 64), down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    with pytest.raises(ValueError, match="addition_embed_type"):
        BrushNetModel(addition_embed_type="text", **small)
    with pytest.raises(ValueError, match="projection_class_embeddings_input_dim"):
        BrushNetModel(addition_embed_type="text_time", **small)


def _pipeline(tiny):
    base, branch = tiny["brushnet"]
    return BrushNetInpaintPipeline.from_pretrained(base, branch)


def test_branch_features_are_added_to_the_frozen_unet(tiny):
    pipe = _pipeline(tiny)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = torch.randn(1, 5, 8, 8, generator=torch.Generator().manual_seed(1))
    text = pipe.encode_text(["a lake"])
    with torch.no_grad():
        plain = pipe.unet(latents, 10, encoder_hidden_states=text).sample
        for scale, same in ((0.0, True), (1.0, False)):
            residuals = pipe.brushnet(latents, 10, text, cond, conditioning_scale=scale)
            with brushnet_residuals_added(pipe.unet, residuals):
                added = pipe.unet(latents, 10, encoder_hidden_states=text).sample
            assert torch.allclose(added, plain) == same, scale
        # The hooks are gone afterwards: the UNet is the stock one again.
        assert torch.equal(pipe.unet(latents, 10, encoder_hidden_states=text).sample, plain)


def test_residuals_for_another_unet_are_refused(tiny):
    pipe = _pipeline(tiny)
    residuals = pipe.brushnet(torch.zeros(1, 4, 8, 8), 1, pipe.encode_text([""]), torch.zeros(1, 5, 8, 8))
    residuals.up = residuals.up[:-1]
    with pytest.raises(ValueError, match="another UNet"):
        with brushnet_residuals_added(pipe.unet, residuals):
            pass


def test_brushnet_inpaints_inside_the_mask_only(tiny, image, mask):
    base, branch = tiny["brushnet"]
    kwargs = dict(model=str(base), brushnet=str(branch), steps=2)
    generator = create_generator("brushnet", **kwargs)
    out = generator.inpaint(image, mask, "a lake", seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any(axis=-1).mean() > 0.5
    assert np.array_equal(out, generator.inpaint(image, mask, "a lake", seed=1))
    # The branch matters: switching it off changes the repainted pixels.
    off = create_generator("brushnet", conditioning_scale=0.0, **kwargs).inpaint(image, mask, "a lake", seed=1)
    assert not np.array_equal(out[mask], off[mask])


def test_missing_brushnet_files_are_named(tmp_path, tiny):
    base, _ = tiny["brushnet"]
    with pytest.raises(FileNotFoundError, match="config.json"):
        BrushNetInpaintPipeline.from_pretrained(base, tmp_path)


def test_powerpaint_loads_task_tokens_and_inpaints(tiny, image, mask):
    base, folder = tiny["powerpaint"]
    pipe = BrushNetInpaintPipeline.from_pretrained_powerpaint(base, folder)
    saved = torch.load(folder / "pytorch_model.bin", weights_only=True)
    learned = saved["text_model.embeddings.token_embedding.trainable_embeddings.P_obj"]
    embedding = pipe.text_encoder_brushnet.embeddings.token_embedding
    ids = torch.tensor([pipe.tokenizer.convert_tokens_to_ids(token) for token in pipe.task_token_map["P_obj"]])
    assert torch.equal(embedding(ids[None])[0], learned)
    # Ordinary words still use the base vocabulary.
    assert torch.equal(embedding(torch.tensor([[5]])), embedding.wrapped(torch.tensor([[5]])))

    kwargs = dict(model=str(base), powerpaint=str(folder), steps=2)
    text_guided = create_generator("powerpaint", **kwargs).inpaint(image, mask, "a lake", seed=1)
    removal = create_generator("powerpaint", task="object-removal", **kwargs).inpaint(image, mask, "a lake", seed=1)
    for out in (text_guided, removal):
        assert np.array_equal(out[~mask], image[~mask])
        assert (out[mask] != image[mask]).any(axis=-1).mean() > 0.5
    assert not np.array_equal(text_guided, removal)


def test_powerpaint_without_task_tokens_is_refused(tmp_path, tiny):
    import shutil

    base, folder = tiny["powerpaint"]
    broken = tmp_path / "PowerPaint_Brushnet"
    shutil.copytree(folder, broken)
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    torch.save({k: v for k, v in state.items() if "trainable_embeddings" not in k}, broken / "pytorch_model.bin")
    with pytest.raises(ValueError, match="task tokens"):
        BrushNetInpaintPipeline.from_pretrained_powerpaint(base, broken)


def test_powerpaint_task_prompts_follow_the_authors():
    texts = powerpaint_task_prompts("a lake", "ugly", "text-guided")
    assert (texts["promptA"], texts["promptB"], texts["promptU"]) == (" P_obj", " P_obj", "a lake")
    texts = powerpaint_task_prompts("a lake", "ugly", "object-removal")
    assert texts["promptA"] == " P_ctxt" and texts["negative_promptA"] == " P_obj"
    assert texts["promptU"] == "a lake empty scene blur" and texts["negative_promptU"] == "ugly"
    assert powerpaint_task_prompts("x", "", "shape-guided")["promptA"] == " P_shape"
    with pytest.raises(ValueError, match="text-guided"):
        powerpaint_task_prompts("x", "", "repaint")
    with pytest.raises(ValueError, match="task"):
        create_generator("powerpaint", model="m", powerpaint="p", task="repaint")
    assert expand_task_tokens(" P_obj P_objx", {"P_obj": ["P_obj_0", "P_obj_1"]}) == " P_obj_0 P_obj_1 P_objx"


def _authors_unet_forward(unet, sample, t, text, residuals):
    """The UNet forward of the authors' edited ``unet_2d_condition.py`` / ``unet_2d_blocks.py``,
    written out block by block: the reference the hook-based injection must reproduce."""
    down, up = list(residuals.down), list(residuals.up)
    emb = unet.time_embedding(unet.time_proj(torch.tensor([t]).expand(sample.shape[0])).to(sample.dtype))

    def pair(block, i, h):
        h = block.resnets[i](h, emb)
        attentions = getattr(block, "attentions", None)
        return attentions[i](h, encoder_hidden_states=text, return_dict=False)[0] if attentions else h

    h = unet.conv_in(sample)
    skips = [h]  # the skip keeps conv_in's output; only the down path gets the residual
    h = h + down.pop(0)
    for block in unet.down_blocks:
        for i in range(len(block.resnets)):
            h = pair(block, i, h) + down.pop(0)
            skips.append(h)
        if block.downsamplers is not None:
            h = block.downsamplers[0](h) + down.pop(0)
            skips.append(h)
    h = unet.mid_block(h, emb, encoder_hidden_states=text) + residuals.mid
    for block in unet.up_blocks:
        for i in range(len(block.resnets)):
            h = torch.cat([h, skips.pop()], dim=1)
            h = pair(block, i, h) + up.pop(0)
        if block.upsamplers is not None:
            h = block.upsamplers[0](h) + up.pop(0)
    assert not down and not up
    return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


@pytest.mark.parametrize("kind", ["brushnet", "powerpaint"])
def test_hooked_unet_matches_the_authors_placement(tiny, kind):
    base, branch = tiny[kind]
    if kind == "brushnet":
        pipe = BrushNetInpaintPipeline.from_pretrained(base, branch)
    else:
        pipe = BrushNetInpaintPipeline.from_pretrained_powerpaint(base, branch)
    generator = torch.Generator().manual_seed(3)
    latents = torch.randn(2, 4, 8, 8, generator=generator)
    cond = torch.randn(2, 5, 8, 8, generator=generator)
    text = pipe.encode_text(["a lake", "sky"])
    with torch.no_grad():
        residuals = pipe.brushnet(latents, 7, text, cond)
        with brushnet_residuals_added(pipe.unet, residuals):
            hooked = pipe.unet(latents, 7, encoder_hidden_states=text).sample
        reference = _authors_unet_forward(pipe.unet, latents, 7, text, residuals)
    torch.testing.assert_close(hooked, reference, rtol=1e-4, atol=1e-5)


def _authors_branch_forward(branch, sample, t, text, cond):
    """The authors' ``BrushNetModel.forward`` written out block by block (conditioning scale 1)."""
    emb = branch.time_embedding(branch.time_proj(torch.tensor([t]).expand(sample.shape[0])).to(sample.dtype))

    def pair(block, i, h):
        h = block.resnets[i](h, emb)
        attentions = getattr(block, "attentions", None)
        return attentions[i](h, encoder_hidden_states=text, return_dict=False)[0] if attentions else h

    h = branch.conv_in_condition(torch.cat([sample, cond], dim=1))
    down = [h]
    for block in branch.down_blocks:
        for i in range(len(block.resnets)):
            h = pair(block, i, h)
            down.append(h)
        if block.downsamplers is not None:
            h = block.downsamplers[0](h)
            down.append(h)
    if getattr(branch.mid_block, "has_cross_attention", False):
        h = branch.mid_block(h, emb, encoder_hidden_states=text)
    else:
        h = branch.mid_block(h, emb)
    mid = h
    skips, up = list(down), []
    for block in branch.up_blocks:
        for i in range(len(block.resnets)):
            h = pair(block, i, torch.cat([h, skips.pop()], dim=1))
            up.append(h)
        if block.upsamplers is not None:
            h = block.upsamplers[0](h)
            up.append(h)
    return ([conv(x) for conv, x in zip(branch.brushnet_down_blocks, down, strict=True)],
            branch.brushnet_mid_block(mid),
            [conv(x) for conv, x in zip(branch.brushnet_up_blocks, up, strict=True)])


@pytest.mark.parametrize("kind", ["brushnet", "powerpaint"])
def test_branch_features_match_the_authors_forward(tiny, kind):
    base, branch = tiny[kind]
    pipe = (BrushNetInpaintPipeline.from_pretrained(base, branch) if kind == "brushnet"
            else BrushNetInpaintPipeline.from_pretrained_powerpaint(base, branch))
    generator = torch.Generator().manual_seed(4)
    latents, cond = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 5, 8, 8, generator=generator)
    text = pipe.encode_text(["a lake"])
    with torch.no_grad():
        ours = pipe.brushnet(latents, 5, text, cond)
        down, mid, up = _authors_branch_forward(pipe.brushnet, latents, 5, text, cond)
    assert len(ours.down) == len(down) and len(ours.up) == len(up)
    for got, expected in zip([*ours.down, ours.mid, *ours.up], [*down, mid, *up]):
        torch.testing.assert_close(got, expected)


def test_sdxl_brushnet_inpaints_inside_the_mask_only(tiny, image, mask):
    base, branch = tiny["brushnet-sdxl"]
    kwargs = dict(model=str(base), brushnet=str(branch), steps=2)
    out = create_generator("brushnet-sdxl", **kwargs).inpaint(image, mask, "a lake", seed=1)
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any(axis=-1).mean() > 0.5
    off = create_generator("brushnet-sdxl", conditioning_scale=0.0, **kwargs).inpaint(image, mask, "a lake", seed=1)
    assert not np.array_equal(out[mask], off[mask])
    # The SDXL loader refuses an SD 1.5 branch; the SDXL branch refuses to run without SDXL's text-time ids.
    _, sd_branch = tiny["brushnet"]
    with pytest.raises(ValueError, match="not an SDXL BrushNet"):
        BrushNetInpaintPipeline.from_pretrained_sdxl(base, sd_branch)
    pipe = BrushNetInpaintPipeline.from_pretrained_sdxl(base, branch)
    with pytest.raises(ValueError, match="added_cond_kwargs"):
        pipe.brushnet(torch.zeros(1, 4, 8, 8), 1, torch.zeros(1, 77, 64), torch.zeros(1, 5, 8, 8))
