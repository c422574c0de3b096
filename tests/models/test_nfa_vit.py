"""NFA-ViT as published: Fix-Sparse Attention, NAA, the paper's decoder and head, its training recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models.detectors import create_detector
from models.detectors import nfa_vit
from models.detectors.nfa_vit import RECOMMENDED_TRAINING, _stages, fix_sparse_mask, masked_attention

REPO = Path(__file__).resolve().parents[2]
TINY = {"image_encoder": "mit_b0", "decoder_channels": 32, "noise_levels": 3, "noise_features": 8, "random_init": True}


def tiny(**kwargs):
    return create_detector("nfa_vit", num_classes=2, **{**TINY, **kwargs})


def test_fix_sparse_mask_is_the_dilated_grid_of_the_query_cell():
    keep = fix_sparse_mask((4, 4), (4, 4), sr_ratio=1, sparse_rate=2)
    assert keep.shape == (16, 16) and keep.sum(1).tolist() == [4] * 16
    seen = keep[0].reshape(4, 4).nonzero().tolist()
    assert seen == [[0, 0], [0, 2], [2, 0], [2, 2]]
    # With key reduction sr, a query belongs to the group of the reduced cell it lies in.
    reduced = fix_sparse_mask((8, 8), (4, 4), sr_ratio=2, sparse_rate=2)
    assert reduced[9].reshape(4, 4).nonzero().tolist() == [[0, 0], [0, 2], [2, 0], [2, 2]]  # (1, 1) -> cell (0, 0)
    assert reduced[2 * 8 + 2].reshape(4, 4).nonzero().tolist() == [[1, 1], [1, 3], [3, 1], [3, 3]]
    # A key grid too small for the query's group: that query sees every key (no empty softmax).
    assert fix_sparse_mask((4, 4), (1, 1), sr_ratio=4, sparse_rate=2).all()
    assert fix_sparse_mask((4, 4), (4, 4), sr_ratio=1, sparse_rate=1).all()
    with pytest.raises(ValueError, match="sparse_rate"):
        fix_sparse_mask((4, 4), (4, 4), 1, 0)


def test_sparse_attention_ignores_keys_outside_the_group():
    network = tiny().network.eval()
    attn = _stages(network.image_encoder)[3][1][0].attn  # stage 4, a non-NAA block, no reduction
    keep = fix_sparse_mask((4, 4), (4, 4), 1, 2)
    y = torch.rand(1, 16, attn.dim)
    changed = y.clone()
    changed[:, ~keep[0]] += torch.rand(int((~keep[0]).sum()), attn.dim)  # every token query 0 may not see
    with torch.no_grad():
        sparse = masked_attention(attn, y, 4, 4, keep)[0][:, 0]
        sparse_changed = masked_attention(attn, changed, 4, 4, keep)[0][:, 0]
        dense = masked_attention(attn, y, 4, 4, None)[0][:, 0]
        dense_changed = masked_attention(attn, changed, 4, 4, None)[0][:, 0]
    torch.testing.assert_close(sparse, sparse_changed)
    assert not torch.allclose(dense, dense_changed)


def test_image_blocks_run_fix_sparse_attention_and_naa(monkeypatch):
    """Every non-last image block must attend through the fixed sparse pattern of its grid, every
    last block through the noise mask; removing the sparsity changes the network's output."""
    model = tiny().eval()
    seen = []
    original = nfa_vit.masked_attention

    def spy(attn, y, height, width, keep):
        seen.append((attn, height, width, keep))
        return original(attn, y, height, width, keep)

    monkeypatch.setattr(nfa_vit, "masked_attention", spy)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        sparse_out = model(x)
    image_blocks = {id(b.attn): (i, j == len(blocks) - 1)
                    for i, (_, blocks, _) in enumerate(_stages(model.network.image_encoder)) for j, b in enumerate(blocks)}
    checked = 0
    for attn, height, width, keep in seen:
        if id(attn) not in image_blocks:
            assert keep is None  # the noise branch: vanilla attention
            continue
        stage, last = image_blocks[id(attn)]
        sr = attn.sr_ratio
        if last:
            assert keep.dtype == torch.bool and keep.shape[-2] == height * width
        else:
            expected = fix_sparse_mask((height, width), (height // sr, width // sr), sr, 2)
            assert torch.equal(keep[0, 0], expected) and not keep.all(), stage
            checked += 1
    assert checked == sum(len(b) - 1 for _, b, _ in _stages(model.network.image_encoder))
    monkeypatch.setattr(nfa_vit, "masked_attention", original)

    dense = tiny(sparse_rate=1).eval()
    dense.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(dense(x), sparse_out)


def test_paper_defaults_decoder_head_and_frozen_noise_branch():
    model = tiny().train()
    network = model.network
    assert model.config.get("noise_to_decoder") is None  # the default, i.e. the paper's decoder
    assert network.decoder.project_extra is None and not network.noise_to_decoder
    assert network.decoder.gamma.shape == (4, 32) and torch.all(network.decoder.gamma == 1e-6)
    assert isinstance(network.image_classifier, torch.nn.Linear) and network.image_head is None
    assert network.image_classifier.in_features == network.image_encoder.out_channels[-1]
    # No gradient can reach the noise side through hard top-k masks: it is frozen, not left dead.
    assert not any(p.requires_grad for p in network.noise_encoder.parameters())
    assert not any(p.requires_grad for p in network.noise_extractor.parameters())
    outputs = model(torch.rand(2, 3, 64, 64), return_outputs=True)
    loss, parts = model.loss(outputs, torch.randint(0, 2, (2, 64, 64)), torch.tensor([0, 1]))
    assert set(parts) == {"pixel", "image"}
    loss.backward()
    assert all(p.grad is not None for p in network.image_encoder.parameters())

    learning = tiny(noise_to_decoder=True, head_channels=8)
    assert any(p.requires_grad for p in learning.network.noise_encoder.parameters())
    with pytest.raises(ValueError, match="noise_to_decoder"):
        tiny(freeze_noiseprint=False)


def test_brgen_training_conf_carries_the_papers_recipe():
    params = yaml.safe_load((REPO / "conf" / "brgen" / "parameters_train.yml").read_text())["train"]
    trainer, kwargs = params["trainer"], params["models"]["nfa_vit"]
    assert params["model"] == "nfa_vit"
    assert trainer["lr"] == RECOMMENDED_TRAINING["lr"] == 5e-3
    assert trainer["weight_decay"] == RECOMMENDED_TRAINING["weight_decay"] == 1e-6
    assert trainer["batch_size"] == RECOMMENDED_TRAINING["batch_size"] == 64
    assert trainer["schedule"] == RECOMMENDED_TRAINING["schedule"] == "cosine" and trainer["warmup_steps"] > 0
    assert trainer["steps"] == RECOMMENDED_TRAINING["epochs"] * 132_000 // 64  # 30 epochs of 132,000 images
    assert kwargs["topk_ratio"] == RECOMMENDED_TRAINING["topk_ratio"] and kwargs["noise_to_decoder"] is False
    # Real weights are named for every frozen or pretrained part (the paper starts from ImageNet
    # MiT weights and TruFor's Noiseprint++); the files are the user's, so they are not loaded here.
    weights = ("image_encoder_weights", "noise_encoder_weights", "noiseprint_weights")
    assert all(kwargs[key] for key in weights)
    # The conf's other model arguments are ones the detector takes.
    # (random_init: false, the conf says it, is the refusal the weights above answer)
    tiny(**{k: v for k, v in kwargs.items() if k not in ("image_encoder", "decoder_channels", "random_init", *weights)})


def test_a_frozen_noise_side_with_random_weights_is_refused():
    with pytest.raises(ValueError, match=r"noiseprint_weights.*noise_encoder_weights.*random_init"):
        tiny(random_init=False)
    # Trainable noise side (noise_to_decoder + freeze_noiseprint=False): nothing frozen, nothing refused.
    assert tiny(random_init=False, noise_to_decoder=True, freeze_noiseprint=False).network.noise_extractor.frozen is False
