"""One test over the whole detector zoo (ours and IMDL-BenCo's), as timm's ``tests/test_models.py``:
every registry entry builds at a small size, trains one step with OUR trainer (its own loss),
predicts masks and image scores in range, and round-trips its checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from models.detectors import create_detector, list_detectors, load_checkpoint, save_checkpoint
from models.detectors.imdl import FAMILY_BACKBONES, FAMILY_FEATURES, MVSS_RESNET50_FILE, SPECS, edge_band
from models.detectors.training import TrainConfig, predict, train_detector
from models.metrics import per_image_pixel_auc, pixel_auc

from tests.models.test_detectors import TINY
from tests.models.test_zoo_extra import SLOW_GLUE, TINY_GLUE

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
SLOW = {"imdl:mesorch", "imdl:mvssnet", "imdl:sparse_vit"}  # 86 M / 2 x ResNet-50 / full-depth UniFormer: tens of seconds on 2 CPU cores
# TruFor, SPAN, CAT-Net, MSCDI-Net (our glue around IMDL-BenCo's code): configurations and the
# tests of their weight files in test_zoo_extra.py; here (and in the baselines test) like the rest.
TINY_IMDL.update(TINY_GLUE)
SLOW = SLOW | SLOW_GLUE


# IMDL-BenCo's feature x backbone family: registered, covered by ``test_family_entry...`` below.
FAMILY = {f"imdl:{feature}_{backbone}" for feature in FAMILY_FEATURES for backbone in FAMILY_BACKBONES}
# Every ResNet / SegFormer entry (32 px), and each fixed-512 px ViT-B / Swin-B backbone once (its
# feature extractor is one of the five the cheap backbones already cover): each feature and each
# backbone runs, at a cost make test can afford.
# The five feature extractors over the two backbones that run at 32 px (each extractor once, each
# backbone at least twice: ~30 s CPU each on 2 cores). The ViT-B / Swin-B backbones only run at
# 512 px (~2 min CPU each here): they run with EDITLENS_HEAVY_TESTS=1.
HEAVY = ["imdl:dct_swin", "imdl:fft_vit", "imdl:sobel_vit16"]
FAMILY_CASES = ["imdl:srm_resnet", "imdl:bayar_segformer", "imdl:dct_resnet", "imdl:fft_segformer", "imdl:sobel_resnet"] + HEAVY
_HEAVY_OFF = pytest.mark.skipif(not os.environ.get("EDITLENS_HEAVY_TESTS"), reason="512 px ViT-B / Swin-B: set EDITLENS_HEAVY_TESTS=1")


def test_every_entry_has_a_tiny_configuration():
    assert set(list_detectors()) == set(TINY) | set(TINY_IMDL) | FAMILY
    assert {f"imdl:{key}" for key in SPECS} == set(TINY_IMDL) | FAMILY
    assert {name.split(":")[1].split("_")[1] for name in FAMILY_CASES} == set(FAMILY_BACKBONES)
    assert {name.split(":")[1].split("_")[0] for name in FAMILY_CASES if name not in HEAVY} == set(FAMILY_FEATURES)


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


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(set(TINY) | set(TINY_IMDL))]
)
def test_zoo_entry_trains_predicts_and_round_trips(name, tmp_path, monkeypatch, torch_hub_cache):
    torch.manual_seed(0)
    if name == "imdl:mvssnet":
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(torch_hub_cache[0] / "hub"))
    kwargs = TINY.get(name) or TINY_IMDL[name]
    model = create_detector(name, 2, **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    samples = _samples()
    result = train_detector(model, samples, TrainConfig(task="binary", steps=1, batch_size=2, log_every=0, time_budget_s=None),
                            progress=False)
    assert result["steps"] == 1 and np.isfinite(result["loss"]).all()
    changed = [k for k, v in model.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, f"{name}: one training step changed no weight"

    images = [image for image, _ in samples]
    probabilities, scores = predict(model, images, batch_size=2)
    assert probabilities.shape == (4, 2, 40, 40)
    assert np.all((probabilities >= 0) & (probabilities <= 1)) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))

    save_checkpoint(tmp_path / "model", model, extra={"task": "binary"})
    reloaded, extra = load_checkpoint(tmp_path / "model")
    assert extra == {"task": "binary"} and reloaded.config == model.config
    again, again_scores = predict(reloaded, images, batch_size=2)
    np.testing.assert_allclose(again, probabilities, atol=1e-4)  # CPU conv order noise
    np.testing.assert_allclose(again_scores, scores, atol=1e-4)


def _backbone_file(name: str, tmp_path) -> tuple[dict, dict]:
    """Random pretrained weights in the format the entry reads: a timm state dict for the timm
    backbones (``backbone_weights``), a MiT state dict for SegFormer (``pretrain_pth_path``)."""
    import timm

    arch = FAMILY_BACKBONES[name.split("_", 1)[1]][0]
    if arch is None:
        state = create_detector(f"imdl:{name}", 2, random_init=True).network.state_dict()
        state = {k: torch.randn_like(v) for k, v in state.items() if k.startswith("block1.") and v.is_floating_point()}
        torch.save(state, tmp_path / "mit.pth")
        return {"pretrain_pth_path": str(tmp_path / "mit.pth")}, state
    state = timm.create_model(arch, pretrained=False).state_dict()
    torch.save(state, tmp_path / "backbone.pth")
    return {"backbone_weights": str(tmp_path / "backbone.pth")}, state


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=_HEAVY_OFF) if n in HEAVY else n for n in FAMILY_CASES])
def test_family_entry_loads_its_backbone_trains_and_round_trips(name, tmp_path):
    """Forward + backward (one step of our trainer), the local backbone file is the weights the
    model ends up with, checkpoint round trip, at the smallest input the backbone accepts."""
    torch.manual_seed(0)
    key = name.split(":")[1]
    weights, state = _backbone_file(key, tmp_path)
    model = create_detector(name, 2, **weights)
    assert model.input_size == SPECS[key].default_size
    # IMDL-BenCo renames (ResNet's stages become ``backbone.<i>``) and cuts (ResNet keeps three
    # stages, the ViT 8 blocks) the backbone: match the file's random matrices by value.
    def fingerprint(v):
        return tuple(v.shape), float(v.flatten()[:8].sum())

    loaded = {fingerprint(v): v for v in model.network.state_dict().values() if v.dim() >= 2}
    matrices = [v for v in state.values() if v.dim() >= 2]
    same = [v for v in matrices if fingerprint(v) in loaded and torch.equal(loaded[fingerprint(v)], v)]
    assert len(same) >= len(matrices) // 2, f"{name}: the backbone file's weights did not land in the model"
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
