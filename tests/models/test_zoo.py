"""One test over the whole detector zoo (ours and IMDL-BenCo's), as timm's ``tests/test_models.py``:
every registry entry builds at a small size, trains one step with OUR trainer (its own loss),
predicts masks and image scores in range, and round-trips its checkpoint. The training happens
once, in the tiny baselines run over every entry (``tests/zoo_run.py``, the ``zoo_run`` fixture),
which ``tests/pipelines/test_baselines.py`` checks as a table."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from models.detectors import create_detector, list_detectors, load_checkpoint, save_checkpoint
from models.detectors.imdl import FAMILY_BACKBONES, FAMILY_FEATURES, FAMILY_SIZE, MVSS_RESNET50_FILE, SPECS, edge_band
from models.detectors.training import TrainConfig, predict, train_detector
from models.metrics import per_image_pixel_auc, pixel_auc

from tests.models.test_detectors import TINY
from tests.models.test_zoo_extra import TINY_GLUE

# Small IMDL-BenCo configurations: the published architectures at a small input size, with
# widths reduced where a constructor argument allows it (depths and layouts stay).
TINY_IMDL = {
    "imdl:mantranet": {"input_size": 32},
    "imdl:pscc_net": {"input_size": 64},
    "imdl:object_former": {"input_size": 32, "num_layers": 2},  # its decoder is hard-wired to 768-d
    "imdl:iml_vit": {"input_size": 32, "embed_dim": 48, "fpn_channels": 16, "mlp_embeding_dim": 16},
    # SparseViT's sparse windows are 32 // s_blocks tokens wide: at 128 px the 1/16 and 1/32 grids
    # are 8 and 4 tokens, so the blocks are set to give windows of 4 and 4.
    # Its decoder is hard-wired to the paper's widths, so only the input size shrinks.
    "imdl:sparse_vit": {"input_size": 128, "s_blocks3": [8, 8, 8, 8], "s_blocks4": [4, 4]},
    "imdl:mvssnet": {"input_size": 32},
    "imdl:mesorch": {"input_size": 64},  # its encoders take any multiple of 32; its mask comes out at 512
}
# TruFor, SPAN, CAT-Net, MSCDI-Net (our glue around IMDL-BenCo's code): configurations and the
# tests of their weight files in test_zoo_extra.py; here (and in the zoo run) like the rest.
TINY_IMDL.update(TINY_GLUE)

# IMDL-BenCo's feature x backbone family: the published networks (full widths and depths, random
# backbones) at 32 px, a multiple of every backbone's side (``FAMILY_BACKBONES``); the ViT / Swin
# ones resized from their 512 px by the adapter.
FAMILY = {f"imdl:{feature}_{backbone}" for feature in FAMILY_FEATURES for backbone in FAMILY_BACKBONES}
FAMILY_TINY = {"input_size": 32, "random_init": True}

# Every registry entry's tiny builder arguments, in ONE place: the zoo run (tests/zoo_run.py)
# trains and evaluates each entry with them; a new entry fails until it has one.
TINY_ZOO = {**TINY, **TINY_IMDL, **{name: FAMILY_TINY for name in sorted(FAMILY)}}

# The full-size (512 px) family runs, ~2 min CPU each on 2 cores: with EDITLENS_HEAVY_TESTS=1.
HEAVY = ["imdl:dct_swin", "imdl:fft_vit", "imdl:sobel_vit16"]
_HEAVY_OFF = pytest.mark.skipif(not os.environ.get("EDITLENS_HEAVY_TESTS"), reason="512 px ViT-B / Swin-B: set EDITLENS_HEAVY_TESTS=1")


def test_every_entry_has_a_tiny_configuration():
    assert set(list_detectors()) == set(TINY_ZOO)
    assert {f"imdl:{key}" for key in SPECS} == set(TINY_IMDL) | FAMILY
    assert all(SPECS[name.split(":")[1]].default_size == FAMILY_SIZE == 512 for name in FAMILY)  # IMDL-BenCo's size


@pytest.fixture(scope="module")
def torch_hub_cache(tmp_path_factory):
    """A torch.hub cache holding (random) torchvision ResNet-50 weights under MVSS-Net's file name."""
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    state = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(state, home / "hub" / "checkpoints" / MVSS_RESNET50_FILE)
    return home, state


def _samples(n: int = 4, size: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    samples = []
    for index in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        label = np.zeros((size, size), np.uint8)
        if index % 2:
            label[8:24, 10:30] = 1
        samples.append((image, label))
    return samples


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_ZOO))
def test_zoo_entry_trains_predicts_and_round_trips(name, zoo_run):
    """From the one baselines run over the registry: one step of our trainer changed the weights,
    the four evaluation images get masks and image scores in range, the checkpoint reloads to the
    same predictions (all without any network: see tests/zoo_run.py)."""
    from tests.zoo_run import SIZE

    facts = zoo_run.facts[name]
    assert facts.row["steps"] == 1
    assert facts.trainable and facts.changed, f"{name}: one training step changed no weight"
    probabilities, scores = facts.probabilities, facts.scores
    assert probabilities.shape == (4, 2, SIZE, SIZE)
    assert np.all((probabilities >= 0) & (probabilities <= 1)) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    assert facts.same_config
    np.testing.assert_allclose(facts.reloaded_probabilities, probabilities, atol=1e-4)  # CPU conv order noise
    np.testing.assert_allclose(facts.reloaded_scores, scores, atol=1e-4)


# One entry per backbone, every feature extractor at least once.
# (The U-Net's Carvana file: its own test below.)
FAMILY_FILE_CASES = ["imdl:srm_resnet", "imdl:bayar_segformer", "imdl:dct_swin", "imdl:fft_vit", "imdl:sobel_vit16"]


def _backbone_file(name: str, tmp_path) -> tuple[dict, dict]:
    """Random pretrained weights in the format the entry reads: a timm state dict for the timm
    backbones (``backbone_weights``), a MiT state dict for SegFormer (``pretrain_pth_path``),
    Pytorch-UNet's checkpoint (state dict + ``mask_values``) for the U-Net."""
    import timm

    from models.detectors.pytorch_unet import PytorchUNet

    backbone = name.split("_", 1)[1]
    if backbone == "segformer":
        state = create_detector(f"imdl:{name}", 2, random_init=True, input_size=32).network.state_dict()
        state = {k: torch.randn_like(v) for k, v in state.items() if k.startswith("block1.") and v.is_floating_point()}
        torch.save(state, tmp_path / "mit.pth")
        return {"pretrain_pth_path": str(tmp_path / "mit.pth")}, state
    if backbone == "unet":
        state = {k: v + torch.randn_like(v) if v.is_floating_point() else v for k, v in PytorchUNet().state_dict().items()}
        torch.save({**state, "mask_values": [0, 1]}, tmp_path / "unet_carvana_scale1.0_epoch2.pth")
        return {"backbone_weights": str(tmp_path / "unet_carvana_scale1.0_epoch2.pth")}, state
    state = timm.create_model(FAMILY_BACKBONES[backbone][0], pretrained=False).state_dict()
    torch.save(state, tmp_path / "backbone.pth")
    return {"backbone_weights": str(tmp_path / "backbone.pth")}, state


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_FILE_CASES)
def test_family_backbone_file_is_the_weights_the_model_ends_up_with(name, tmp_path):
    """Training, prediction and checkpoints of every family entry: the zoo run above."""
    torch.manual_seed(0)
    weights, state = _backbone_file(name.split(":")[1], tmp_path)
    model = create_detector(name, 2, input_size=32, **weights)
    # IMDL-BenCo renames (ResNet's stages become ``backbone.<i>``) and cuts (ResNet keeps three
    # stages, the ViT 8 blocks) the backbone: match the file's random matrices by value.
    def fingerprint(v):
        return tuple(v.shape), float(v.flatten()[:8].sum())

    loaded = {fingerprint(v): v for v in model.network.state_dict().values() if v.dim() >= 2}
    matrices = [v for v in state.values() if v.dim() >= 2]
    same = [v for v in matrices if fingerprint(v) in loaded and torch.equal(loaded[fingerprint(v)], v)]
    assert len(same) >= len(matrices) // 2, f"{name}: the backbone file's weights did not land in the model"


def test_unet_entries_load_the_carvana_checkpoint_without_network(tmp_path, monkeypatch):
    """IMDL-BenCo's ``UNet`` asks ``torch.hub.load('milesial/Pytorch-UNet', 'unet_carvana', ...)``:
    the adapter answers with the local build, every tensor of the checkpoint lands (except the
    two layers IMDL-BenCo replaces), and torch.hub / sockets are never asked for the network."""
    github_calls = []

    def hub_load(repo_or_dir, *args, **kwargs):
        github_calls.append(repo_or_dir)
        raise RuntimeError("torch.hub.load reached")

    def no_connect(self, address):
        raise OSError(f"network connection to {address}")

    monkeypatch.setattr(torch.hub, "load", hub_load)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    weights, state = _backbone_file("srm_unet", tmp_path)
    net = create_detector("imdl:srm_unet", 2, input_size=32, **weights).network.net
    assert github_calls == [] and torch.hub.load is hub_load  # the substitution is undone
    loaded = net.state_dict()
    replaced = {"inc.double_conv.0.weight", "outc.conv.weight", "outc.conv.bias"}
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k not in replaced)
    # The first conv takes RGB + the 9 SRM channels: its RGB part is the checkpoint's.
    assert loaded["inc.double_conv.0.weight"].shape[1] == 12
    torch.testing.assert_close(loaded["inc.double_conv.0.weight"][:, :3], state["inc.double_conv.0.weight"])
    with pytest.raises(ValueError, match=r"backbone_weights.*random_init"):
        create_detector("imdl:srm_unet", 2)
    with pytest.raises(FileNotFoundError, match="Pytorch-UNet Carvana checkpoint"):
        create_detector("imdl:srm_unet", 2, backbone_weights=str(tmp_path / "missing.pth"))
    assert github_calls == []


def test_unet_from_a_local_clone_of_the_repository(tmp_path):
    """``unet_repo``: the architecture comes from a local Pytorch-UNet clone through
    ``torch.hub.load(dir, source='local', pretrained=False)`` and the weights from the file. A
    stand-in clone whose ``hubconf.py`` records its call (the real one: next test)."""
    repo = tmp_path / "Pytorch-UNet"
    repo.mkdir()
    (repo / "hubconf.py").write_text(
        "from models.detectors.pytorch_unet import PytorchUNet\n"
        "CALLS = []\n"
        "def unet_carvana(pretrained=False, scale=0.5):\n"
        "    CALLS.append((pretrained, scale))\n"
        "    if pretrained:\n"
        "        raise RuntimeError('would download the Carvana weights')\n"
        "    return PytorchUNet(3, 2)\n")
    weights, state = _backbone_file("bayar_unet", tmp_path)
    net = create_detector("imdl:bayar_unet", 2, input_size=32, unet_repo=str(repo), **weights).network.net
    assert torch.equal(net.state_dict()["down4.maxpool_conv.1.double_conv.3.weight"], state["down4.maxpool_conv.1.double_conv.3.weight"])
    with pytest.raises(FileNotFoundError, match="no hubconf.py"):
        create_detector("imdl:bayar_unet", 2, unet_repo=str(tmp_path), random_init=True)


@pytest.mark.skipif(not os.environ.get("EDITLENS_PYTORCH_UNET_REPO"),
                    reason="set EDITLENS_PYTORCH_UNET_REPO to a clone of github.com/milesial/Pytorch-UNet")
def test_our_unet_is_pytorch_unets():
    """Same parameter names and shapes as the repository's ``unet_carvana``, same outputs."""
    from models.detectors.pytorch_unet import PytorchUNet

    theirs = torch.hub.load(os.environ["EDITLENS_PYTORCH_UNET_REPO"], "unet_carvana", source="local", pretrained=False).eval()
    state = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(state)
    ours = PytorchUNet()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)
    x = torch.rand(2, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs(x))


@pytest.mark.parametrize("name", ["imdl:fft_vit", "imdl:sobel_vit16"])
def test_vit_any_size_forward_is_imdlbencos_at_512(name):
    """At other sizes the adapter reads the ViT token grid at the input's size: at 512 px that
    forward is IMDL-BenCo's own, output for output (one block kept: the blocks are the same
    either way and make the 512 px check cheap)."""
    from models.detectors.imdl import _vit_forward_any_size

    torch.manual_seed(0)
    network = create_detector(name, 2, random_init=True).network.eval()
    network.blocks = network.blocks[:1]
    image, mask = torch.rand(1, 3, 512, 512), torch.zeros(1, 1, 512, 512)
    with torch.no_grad():
        theirs, ours = network(image, mask), _vit_forward_any_size(network, image, mask)
    torch.testing.assert_close(ours["pred_mask"], theirs["pred_mask"])
    torch.testing.assert_close(ours["backward_loss"], theirs["backward_loss"])
    small = create_detector(name, 2, input_size=64, random_init=True).network
    groups = 2 if name == "imdl:fft_vit" else 1  # the feature tokens have their own half of the table
    assert small.pos_embed.shape == (1, 1 + groups * (64 // 16) ** 2, 768)


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=_HEAVY_OFF) for n in HEAVY])
def test_family_entry_at_its_full_512_px(name, tmp_path):
    """IMDL-BenCo's ViT-B / Swin-B as published (512 px, no resizing): one step, prediction and
    checkpoint round trip."""
    torch.manual_seed(0)
    model = create_detector(name, 2, random_init=True)
    assert model.input_size == 512
    samples = _samples(2)
    result = train_detector(model, samples, TrainConfig(task="binary", steps=1, batch_size=2, log_every=0, time_budget_s=None),
                            progress=False)
    assert result["steps"] == 1 and np.isfinite(result["loss"]).all()
    images = [image for image, _ in samples]
    probabilities, scores = predict(model, images, batch_size=2)
    assert probabilities.shape == (2, 2, 40, 40) and np.all((scores >= 0) & (scores <= 1))
    save_checkpoint(tmp_path / "model", model, extra={"task": "binary"})
    reloaded, _ = load_checkpoint(tmp_path / "model")
    np.testing.assert_allclose(predict(reloaded, images, batch_size=2)[0], probabilities, atol=1e-4)


def test_family_refuses_missing_backbone_weights(tmp_path):
    with pytest.raises(ValueError, match=r"backbone_weights.*random_init"):
        create_detector("imdl:srm_resnet", 2)
    with pytest.raises(ValueError, match=r"pretrain_pth_path.*random_init"):
        create_detector("imdl:srm_segformer", 2)
    with pytest.raises(FileNotFoundError, match="backbone_weights file not found"):
        create_detector("imdl:srm_vit", 2, backbone_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="input_size must be a multiple of 32, got 48"):
        create_detector("imdl:dct_swin", 2, input_size=48, random_init=True)


def test_mvssnet_refuses_to_download_its_resnet(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=MVSS_RESNET50_FILE):
        create_detector("imdl:mvssnet", 2, input_size=32)


def test_mvssnet_backbone_is_the_cached_resnet(monkeypatch, torch_hub_cache):
    home, state = torch_hub_cache
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(home / "hub"))
    network = create_detector("imdl:mvssnet", 2, input_size=32).network
    loaded = network.noise_extractor.model.state_dict() if hasattr(network.noise_extractor, "model") else network.noise_extractor.state_dict()
    hits = [k for k, v in state.items() if k in loaded and torch.equal(loaded[k], v)]
    assert len(hits) > 100, "MVSS-Net's noise branch did not take the cached ResNet-50 weights"


def test_imdl_entries_are_binary_only():
    with pytest.raises(ValueError, match="binary detector"):
        create_detector("imdl:mantranet", 3, input_size=32)


def test_imdl_edge_band_matches_imdlbenco():
    from IMDLBenCo.transforms.edge_mask_generator import EdgeMaskGenerator

    mask = torch.zeros(2, 1, 32, 32)
    mask[0, :, 5:20, 8:30] = 1
    mask[1, :, 0:10, 0:10] = 1
    expected = torch.as_tensor(EdgeMaskGenerator(7)(mask)).float()
    torch.testing.assert_close(edge_band(mask), expected)


def test_pixel_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    target = rng.random((5, 16, 16)) > 0.7
    target[0] = False  # authentic image: IMDL-BenCo scores 0.0
    prob = np.clip(target * 0.3 + rng.random((5, 16, 16)) * 0.8, 0, 1).round(2)  # rounded: ties
    per_image = per_image_pixel_auc(prob, target)
    assert per_image[0] == 0.0
    for index in range(1, 5):
        assert per_image[index] == pytest.approx(roc_auc_score(target[index].ravel(), prob[index].ravel()), abs=1e-12)
    assert pixel_auc(prob, target) == pytest.approx(roc_auc_score(target.ravel(), prob.ravel()), abs=1e-12)
    full = np.ones((1, 4, 4), bool)
    assert np.isnan(per_image_pixel_auc(np.full((1, 4, 4), 0.5), full)[0])
    with pytest.raises(ValueError, match="one shape"):
        pixel_auc(prob[0], target)
