"""The IMDL-BenCo entries that need our glue (``models/detectors/imdl_glue.py``): TruFor, SPAN,
CAT-Net, MSCDI-Net. Their train / predict / checkpoint round trip runs in ``test_zoo.py``'s zoo
test with ``TINY_GLUE``; here: each pretrained file, written at random in the format its
constructor reads, lands in the model; missing or wrong files fail clearly; SPAN's head is
registered; CAT-Net's JPEG DCT against scipy and Pillow's encoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from models.detectors import create_detector
from models.detectors.jpeg_dct import (
    dequantised_luma,
    luma_block_dct,
    luma_dct_coefficients,
    luma_qtable,
    quantise,
    rgb_to_luma,
)

# CAT-Net's HRNet at one block per branch and an eighth of its widths (the DCT stream's fixed
# 96-wide first layer and the 21-bin input stay).
TINY_CAT_NET_HRNET = {
    "STAGE1": {"NUM_BLOCKS": [1], "NUM_CHANNELS": [16]},
    "STAGE2": {"NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [8, 16]},
    "STAGE3": {"NUM_MODULES": 1, "NUM_BLOCKS": [1, 1, 1], "NUM_CHANNELS": [8, 16, 32]},
    "STAGE4": {"NUM_MODULES": 1, "NUM_BLOCKS": [1, 1, 1, 1], "NUM_CHANNELS": [8, 16, 32, 64]},
    "DC_STAGE3": {"NUM_MODULES": 1, "NUM_BLOCKS": [1, 1], "NUM_CHANNELS": [16, 32]},
    "DC_STAGE4": {"NUM_MODULES": 1, "NUM_BLOCKS": [1, 1, 1], "NUM_CHANNELS": [16, 32, 64]},
    "STAGE5": {"NUM_BLOCKS": [1, 1, 1, 1], "NUM_CHANNELS": [8, 16, 32, 64]},
}
# Tiny configurations for test_zoo's round trip (random weights: the files are tested below).
TINY_GLUE = {
    # Its MiT-B2 dual encoder and 17-layer Noiseprint++ are hard-wired; only the decoders narrow.
    "imdl:trufor": {"input_size": 64, "decoder_embed_dim": 32, "random_init": True},
    # Its widths are ManTra-Net's (hard-wired) and its extractor never downsamples: 256-channel
    # convolutions at full resolution, so 16 px.
    "imdl:span": {"input_size": 16, "random_init": True},
    "imdl:cat_net": {"input_size": 64, "hrnet_extra": TINY_CAT_NET_HRNET, "random_init": True},
    # The smallest backbone it offers (MiT-b2); glca=0 drops the local-attention windows, which
    # need inputs that are multiples of 256 (``test_mscdi_net_with_its_local_attention``).
    "imdl:mscdi_net": {"input_size": 64, "backbone": "mit_bit2", "glca": 0, "random_init": True},
}
SLOW_GLUE = {"imdl:trufor"}  # two builds of a 66 M-parameter model


def _randomised(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}


def _equal_count(module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> int:
    own = module.state_dict()
    return sum(torch.equal(own[prefix + k], v) for k, v in state.items() if prefix + k in own)


# --- weights files: exact formats, landing, errors ---------------------------------------------


@pytest.mark.slow
def test_trufor_loads_noiseprint_and_mit_b2_into_both_streams(tmp_path):
    model = create_detector("imdl:trufor", 2, input_size=64, decoder_embed_dim=32, random_init=True)
    inner = model.network.model
    # Noiseprint++: the DnCNN state dict IMDL-BenCo separates from TruFor's checkpoint.
    noiseprint = _randomised(inner.dncnn.state_dict())
    torch.save(noiseprint, tmp_path / "noiseprint.pth")
    # NVlabs' mit_b2.pth: the single-stream MiT-B2 classifier (its head does not fit).
    mit = _randomised({k: v for k, v in inner.backbone.state_dict().items()
                       if k.split(".")[0].rstrip("1234") in ("patch_embed", "block", "norm")})
    torch.save({**mit, "head.weight": torch.randn(1000, 512)}, tmp_path / "mit_b2.pth")
    loaded = create_detector("imdl:trufor", 2, input_size=64, decoder_embed_dim=32,
                             np_pretrain_weights=str(tmp_path / "noiseprint.pth"),
                             mit_b2_pretrain_weights=str(tmp_path / "mit_b2.pth")).network
    assert _equal_count(loaded.model.dncnn, noiseprint) == len(noiseprint)
    assert _equal_count(loaded.model.backbone, mit) == len(mit)
    assert _equal_count(loaded.model.backbone, mit, prefix="extra_") == len(mit)  # the Noiseprint++ stream too
    assert not any(p.requires_grad for p in loaded.model.dncnn.parameters())
    loaded.train()
    assert not loaded.model.dncnn.training and loaded.model.backbone.training  # frozen BN statistics stay

    with pytest.raises(ValueError, match=r"np_pretrain_weights.*does not fit"):
        create_detector("imdl:trufor", 2, np_pretrain_weights=str(tmp_path / "mit_b2.pth"),
                        mit_b2_pretrain_weights=str(tmp_path / "mit_b2.pth"))


def test_noiseprint_file_formats(tmp_path):
    from models.detectors.imdl_glue import noiseprint_state

    dncnn = {"0.weight": torch.randn(64, 3, 3, 3), "1.running_mean": torch.randn(64)}
    torch.save(dncnn, tmp_path / "noiseprint.pth")  # IMDL-BenCo's separated file
    torch.save({"network": dncnn}, tmp_path / "np++.pth")  # TruFor's Noiseprint++ layout
    torch.save({"epoch": 3, "state_dict": {**{f"dncnn.{k}": v for k, v in dncnn.items()},
                                           "backbone.x": torch.zeros(1)}}, tmp_path / "trufor.pth.tar")
    for name in ("noiseprint.pth", "np++.pth", "trufor.pth.tar"):
        state = noiseprint_state(str(tmp_path / name))
        assert state.keys() == dncnn.keys() and all(torch.equal(state[k], v) for k, v in dncnn.items())
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"imdl:trufor: np_pretrain_weights file .*list.pth does not hold"):
        noiseprint_state(str(tmp_path / "list.pth"))


def test_span_loads_its_manipulation_trace_extractor_and_trains_its_head(tmp_path):
    from IMDLBenCo.model_zoo.span.mantranet import IMTFE

    state = _randomised(IMTFE(device=torch.device("cpu")).state_dict())
    torch.save(state, tmp_path / "IMTFEv4.pt")
    model = create_detector("imdl:span", 2, input_size=16, weight_path=str(tmp_path / "IMTFEv4.pt"))
    assert _equal_count(model.network.featex, state) == len(state)
    # The head is registered (IMDL-BenCo's Last_Layer_0725 made new random layers every call):
    head = [k for k in model.state_dict() if ".last_layer." in k]
    assert len(head) == 8  # four convolutions, weight + bias
    model.eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))
    # ... where IMDL-BenCo's own SPAN answers differently on every call:
    from IMDLBenCo.model_zoo.span.SPAN import SPAN

    upstream = SPAN(str(tmp_path / "IMTFEv4.pt"), device=torch.device("cpu")).eval()
    with torch.no_grad():
        first, second = (upstream(x, mask=torch.zeros(1, 1, 16, 16))["pred_mask"] for _ in range(2))
    assert not torch.allclose(first, second)
    model.train()
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:12, 4:12] = 1
    loss, _ = model.loss(model(x, return_outputs=True), target, torch.ones(1))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.network.last_layer.parameters())


def test_cat_net_loads_hrnet_and_dct_stream_files(tmp_path):
    kwargs = {"input_size": 64, "hrnet_extra": TINY_CAT_NET_HRNET}
    network = create_detector("imdl:cat_net", 2, random_init=True, **kwargs).network.model
    own = network.state_dict()
    # The ImageNet HRNet file: RGB-stream names (plus its classifier, which does not fit).
    rgb_parts = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition1.", "stage2.", "transition2.",
                 "stage3.", "transition3.", "stage4.")
    rgb = _randomised({k: v for k, v in own.items() if k.startswith(rgb_parts)})
    torch.save({**rgb, "classifier.weight": torch.randn(1000, 2048)}, tmp_path / "hrnetv2_w48_imagenet_pretrained.pth")
    # DCT_djpeg.pth.tar: a training checkpoint {"state_dict": ...} of the DCT stream + its own head.
    dct = _randomised({k: v for k, v in own.items() if k.startswith("dc_")})
    head = _randomised({k: v for k, v in own.items() if k.startswith("last_layer.")})
    torch.save({"epoch": 1, "state_dict": {**dct, **head}}, tmp_path / "DCT_djpeg.pth.tar")
    loaded = create_detector("imdl:cat_net", 2, pretrained_rgb=str(tmp_path / "hrnetv2_w48_imagenet_pretrained.pth"),
                             pretrained_dct=str(tmp_path / "DCT_djpeg.pth.tar"), **kwargs).network.model
    assert _equal_count(loaded, rgb) == len(rgb)
    assert _equal_count(loaded, dct) == len(dct)
    assert _equal_count(loaded, {k: v for k, v in head.items() if v.dim() > 1}) == 0  # CAT-Net keeps its head

    torch.save({"something": torch.zeros(3)}, tmp_path / "unrelated.pth")
    with pytest.raises(ValueError, match=r"pretrained_rgb file .*unrelated.pth shares no tensor"):
        create_detector("imdl:cat_net", 2, pretrained_rgb=str(tmp_path / "unrelated.pth"),
                        pretrained_dct=str(tmp_path / "DCT_djpeg.pth.tar"), **kwargs)


def test_cat_net_reads_its_hrnet_config_file(tmp_path):
    import yaml

    from models.detectors.imdl_glue import CAT_NET_EXTRA

    config = {"MODEL": {"PRETRAINED_RGB": "/not/read.pth", "EXTRA": {"FINAL_CONV_KERNEL": 3, **TINY_CAT_NET_HRNET}}}
    for stage in TINY_CAT_NET_HRNET:  # a complete file: the shipped layout's other keys
        config["MODEL"]["EXTRA"][stage] = {**CAT_NET_EXTRA[stage], **TINY_CAT_NET_HRNET[stage]}
    (tmp_path / "CAT_tiny.yaml").write_text(yaml.safe_dump(config))
    network = create_detector("imdl:cat_net", 2, input_size=64, random_init=True,
                              cfg_file=str(tmp_path / "CAT_tiny.yaml")).network.model
    assert network.last_layer[-1].kernel_size == (3, 3)  # FINAL_CONV_KERNEL came from the file
    assert network.stage4[0].branches[3][0].conv1.out_channels == 64  # ... and the tiny widths
    with pytest.raises(FileNotFoundError, match="cfg_file file not found"):
        create_detector("imdl:cat_net", 2, input_size=64, random_init=True, cfg_file=str(tmp_path / "missing.yaml"))
    (tmp_path / "other.yaml").write_text("TRAIN: {LR: 0.1}\n")
    with pytest.raises(ValueError, match="has no MODEL.EXTRA"):
        create_detector("imdl:cat_net", 2, input_size=64, random_init=True, cfg_file=str(tmp_path / "other.yaml"))


def test_mscdi_net_loads_its_segformer_file(tmp_path):
    kwargs = TINY_GLUE["imdl:mscdi_net"]
    encoder = create_detector("imdl:mscdi_net", 2, **kwargs).network.segformer.segformer
    state = _randomised(encoder.state_dict())
    torch.save(state, tmp_path / "mit_b2.pth")
    loaded = create_detector("imdl:mscdi_net", 2, **{**kwargs, "random_init": False},
                             backbone_weights_path=str(tmp_path / "mit_b2.pth")).network.segformer.segformer
    assert _equal_count(loaded, state) == len(state)


@pytest.mark.parametrize("name, arg, extra", [
    ("imdl:trufor", "np_pretrain_weights", {"mit_b2_pretrain_weights": "mit.pth"}),
    ("imdl:span", "weight_path", {}),
    ("imdl:cat_net", "pretrained_dct", {"pretrained_rgb": "rgb.pth", "input_size": 64}),
    ("imdl:mscdi_net", "backbone_weights_path", {"input_size": 256}),
])
def test_missing_weights_fail_clearly(name, arg, extra, tmp_path):
    with pytest.raises(ValueError, match=rf"{arg}.*random_init"):
        create_detector(name, 2, **extra)
    with pytest.raises(FileNotFoundError, match=rf"{name}: ({arg}|\w+) file not found"):
        create_detector(name, 2, **{k: str(tmp_path / v) if k.endswith(("weights", "rgb")) else v
                                    for k, v in extra.items()}, **{arg: str(tmp_path / "missing.pth")})


def test_sizes_the_architectures_cannot_take_fail_clearly():
    with pytest.raises(ValueError, match="multiple of 32"):
        create_detector("imdl:cat_net", 2, input_size=72, random_init=True)
    with pytest.raises(ValueError, match="glca=12 needs an input_size that is a multiple of 256"):
        create_detector("imdl:mscdi_net", 2, input_size=128, random_init=True)


@pytest.mark.slow
def test_mscdi_net_with_its_local_attention():
    """The paper's GLCA windows (glca=12) at the smallest input they take, 256 px: forward only."""
    model = create_detector("imdl:mscdi_net", 2, input_size=256, backbone="mit_bit2", random_init=True).eval()
    with torch.no_grad():
        logits = model(torch.rand(1, 3, 40, 40))
    assert logits.shape == (1, 2, 40, 40) and torch.isfinite(logits).all()


# --- CAT-Net's JPEG side -----------------------------------------------------------------------


def _photo_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth colour regions plus sensor-like noise (uint8 RGB), closer to a photo than noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    return np.clip(np.asarray(coarse, np.float64) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)


def _as_batch(rgb: np.ndarray) -> torch.Tensor:
    return torch.tensor(rgb.transpose(2, 0, 1)[None], dtype=torch.float64)


def test_block_dct_matches_scipy_per_block():
    from scipy.fft import dctn

    rgb = _photo_like()
    y = rgb_to_luma(_as_batch(rgb))[0].numpy() - 128.0  # Y itself: see the Pillow round trip below
    blocks = y.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3)  # (block row, block col, x, y)
    expected = dctn(blocks, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(64, 64)
    np.testing.assert_allclose(luma_block_dct(_as_batch(rgb))[0].numpy(), expected, atol=1e-9)
    # Quantisation: divide by the table block-wise, round half away from zero.
    table = luma_qtable(50)
    coefficients = torch.tensor([[[2.5, -2.5, 7.9, -0.49] + [0.0] * 4] * 8], dtype=torch.float64)
    quantised = quantise(coefficients * torch.tensor(table[None], dtype=torch.float64), table)
    assert quantised[0, 0, :4].tolist() == [3.0, -3.0, 8.0, -0.0]


@pytest.mark.parametrize("quality", [10, 50, 75, 95, 100])
def test_qtable_is_the_one_pillow_writes(quality):
    buffer = io.BytesIO()
    Image.fromarray(_photo_like(16)).save(buffer, "JPEG", quality=quality)
    written = np.array(Image.open(buffer).quantization[0]).reshape(8, 8)  # Pillow: natural order
    np.testing.assert_array_equal(luma_qtable(quality), written)
    assert quality != 100 or (written == 1).all()


@pytest.mark.parametrize("quality, mean_error, largest_error", [(100, 0.2, 1), (90, 0.6, 8), (75, 0.4, 6)])
def test_coefficients_reproduce_pillows_jpeg(quality, mean_error, largest_error):
    """Our quantised coefficients, dequantised and inverse-transformed, give the Y plane Pillow
    decodes from its own JPEG of the same image (4:4:4, libjpeg's integer DCT): within a level or
    two on average (their DCT rounds differently near quantisation boundaries)."""
    rgb = _photo_like(64, seed=quality)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=0)
    decoded = Image.open(buffer)
    decoded.draft("YCbCr", decoded.size)  # libjpeg's Y plane, no colour conversion back
    assert decoded.mode == "YCbCr"
    pillow_y = np.asarray(decoded, np.float64)[..., 0]
    table = luma_qtable(quality)
    coefficients = luma_dct_coefficients(_as_batch(rgb), table)
    assert torch.equal(coefficients, coefficients.round())
    ours = np.clip(np.round(dequantised_luma(coefficients, table)[0].numpy()), 0, 255)
    error = np.abs(ours - pillow_y)
    assert error.mean() < mean_error and error.max() <= largest_error
    # The check has teeth: swapping the frequency axes of every block ruins the reconstruction.
    swapped = coefficients.reshape(1, 8, 8, 8, 8).transpose(2, 4).reshape(1, 64, 64)
    wrong = np.clip(np.round(dequantised_luma(swapped, table.T)[0].numpy()), 0, 255)
    assert np.abs(wrong - pillow_y).mean() > 5 * error.mean() + 1


def test_cat_net_input_is_rgb_and_the_dct_volume():
    from models.detectors.base import IMAGENET_MEAN, IMAGENET_STD
    from models.detectors.imdl_glue import dct_volume

    coefficients = torch.tensor([[[0.0, 1, -1, 19], [-19, 20, -20, 300]]])
    volume = dct_volume(coefficients)
    assert volume.shape == (1, 21, 2, 4) and torch.equal(volume.sum(1), torch.ones(1, 2, 4))
    bins = volume.argmax(1)[0].tolist()
    assert bins == [[0, 1, 1, 19], [19, 20, 20, 20]]

    model = create_detector("imdl:cat_net", 2, **TINY_GLUE["imdl:cat_net"], jpeg_quality=90)
    rgb = _photo_like(64)
    unit = torch.tensor(rgb.transpose(2, 0, 1)[None] / 255.0, dtype=torch.float32)
    normalised = (unit - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    inputs, tables = model.network.network_input(normalised)
    assert inputs.shape == (1, 24, 64, 64) and tables.shape == (1, 1, 8, 8)
    torch.testing.assert_close(inputs[:, :3], (_as_batch(rgb).float() - 127.5) / 127.5, atol=1e-5, rtol=0)
    expected = dct_volume(luma_dct_coefficients(_as_batch(rgb), luma_qtable(90))).float()
    assert torch.equal(inputs[:, 3:], expected)
    np.testing.assert_array_equal(tables[0, 0].numpy(), luma_qtable(90))


def test_conf_gpu_names_every_required_pretrained_file_of_the_imdl_zoo():
    """The full-size env names a local file for every weight argument an IMDL-BenCo entry cannot
    do without (a user drops the releases into data/01_raw/weights/); none is left to random_init."""
    from pathlib import Path

    import yaml

    from models.detectors.imdl import SPECS

    conf = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf" / "gpu" / "parameters_train.yml").read_text())
    models = conf["train"]["models"]
    missing = {f"imdl:{key}": [arg for arg in spec.required_weights if not (models.get(f"imdl:{key}") or {}).get(arg)]
               for key, spec in SPECS.items() if spec.required_weights}
    assert {name: args for name, args in missing.items() if args} == {}
    assert not any((kwargs or {}).get("random_init") for kwargs in models.values())
