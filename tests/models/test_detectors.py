"""Every registered detector through one interface; checkpoints; local weights; the papers'
building blocks (NFA-ViT's noise-guided mask, MaskCLIP's edge band, CLIP loading offline)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from models.detectors import (
    ImageHeadDetector,
    SegmentationDetector,
    UnknownNameError,
    create_detector,
    detector_from_state,
    detector_state,
    list_detectors,
    load_checkpoint,
    save_checkpoint,
)
from models.detectors.base import IGNORE_INDEX, edited_logit, read_weights_file
from models.detectors.maskclip import edge_band, load_mae_weights
from models.detectors.nfa_vit import NoiseResidualExtractor, least_similar_mask, load_noiseprint_weights
from models.detectors.training import predict, targets_for_task

# A CLIP small enough for CPU tests; the real one is ViT-L/14 (see models/detectors/clip.py).
TINY_CLIP = {
    "projection_dim": 16,
    "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2,
                    "max_position_embeddings": 16, "vocab_size": 64, "bos_token_id": 62, "eos_token_id": 63},
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 2,
                      "image_size": 32, "patch_size": 8},
}

# Small widths so every entry runs in about a second on a CPU; the architectures are the real ones.
TINY = {
    "deeplabv3plus": {"encoder_name": "resnet18", "decoder_channels": 32},
    "segformer": {"encoder_name": "mit_b0", "decoder_segmentation_channels": 32},
    "fcn8s": {"fc_channels": 64},
    "nfa_vit": {"image_encoder": "mit_b0", "decoder_channels": 32, "noise_levels": 3, "noise_features": 8, "head_channels": 16, "random_init": True},
    "maskclip": {"clip_config": TINY_CLIP, "mae_kwargs": {"img_size": 64, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
                 "decoder_channels": 16, "heads": 2, "prompt_length": 4, "random_init": True},
    "cnnspot": {"backbone": "resnet18"},
    "universal_fake_det": {"clip_config": TINY_CLIP, "random_init": True},
    "srm_unet": {"widths": [8, 16]},
    "bayar_unet": {"widths": [8, 16]},
    "rgb_unet": {"widths": [8, 16]},
}


def tiny_detector(name: str, num_classes: int, **kwargs) -> SegmentationDetector:
    return create_detector(name, num_classes=num_classes, **{**TINY.get(name, {}), **kwargs})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry_lists_the_seed_architectures():
    ours = [name for name in list_detectors() if not name.startswith("imdl:")]
    assert set(ours) == {"deeplabv3plus", "segformer", "fcn8s", "nfa_vit", "maskclip", "cnnspot", "universal_fake_det",
                         "srm_unet", "bayar_unet", "rgb_unet"}
    assert list_detectors() == sorted(list_detectors())
    assert set(TINY) == set(ours), "every entry of ours needs a tiny configuration here (IMDL-BenCo's: test_zoo.py)"


@pytest.mark.parametrize("num_classes", [2, 4], ids=["binary", "semantic"])
@pytest.mark.parametrize("name", sorted(TINY))  # IMDL-BenCo's entries: test_zoo.py
def test_forward_backward_and_image_scores(name, num_classes):
    model = tiny_detector(name, num_classes).train()
    assert model.num_classes == num_classes
    # Plus what the builder resolved and records itself (e.g. MaskCLIP's defaults).
    assert model.config == {"name": name, "num_classes": num_classes, **TINY[name], **getattr(model, "resolved_config", {})}
    x = torch.rand(2, 3, 64, 64)
    outputs = model(x, return_outputs=True)
    logits = outputs.pixel_logits
    assert logits.shape == (2, num_classes, 64, 64) and logits.dtype == torch.float32
    if name == "nfa_vit":  # the paper's one-logit BCE mask head for the binary task, C-way otherwise
        assert model.single_logit == (num_classes == 2)

    # The entry's own objective: pixel loss, plus its image loss / edge term where it has them.
    target = torch.randint(0, num_classes, (2, 64, 64))
    target[:, :4] = IGNORE_INDEX
    loss, parts = model.loss(outputs, target, torch.tensor([0, num_classes - 1]))
    assert loss.ndim == 0 and torch.isfinite(loss) and set(parts) <= {"pixel", "image", "edge"}
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads, "no trainable parameters"
    missing = [n for n, g in grads.items() if g is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for g in grads.values())

    scores = SegmentationDetector.image_scores(logits.detach())
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    expected = (1 - logits.detach().softmax(1)[:, 0]).flatten(1).max(1).values
    torch.testing.assert_close(scores, expected)
    if model.has_image_head:
        assert isinstance(model, ImageHeadDetector) and outputs.image_logits is not None
        own = torch.sigmoid(edited_logit(outputs.image_logits.detach()))
        assert own.shape == (2,) and ((own >= 0) & (own <= 1)).all()
    if not model.pixel_level:
        # Image classifiers: constant over space, and the max-pixel score IS the model's own score.
        assert (logits == logits[:, :, :1, :1]).all()
        torch.testing.assert_close(scores, torch.sigmoid(edited_logit(outputs.image_logits.detach())))


@pytest.mark.parametrize("name", sorted(TINY))  # IMDL-BenCo's entries: test_zoo.py
def test_any_input_size_is_padded_and_cropped_back(name):
    model = tiny_detector(name, 2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 50, 70)).shape == (1, 2, 50, 70)


@pytest.mark.parametrize("name", sorted(TINY))  # IMDL-BenCo's entries: test_zoo.py
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path):
    model = tiny_detector(name, 3)
    with torch.no_grad():  # fcn8s starts with zero score layers; make every weight matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)

    state, config = detector_state(model)
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in state.values())
    with torch.no_grad():
        torch.testing.assert_close(detector_from_state(state, config).eval()(x), expected, rtol=0, atol=0)

    weights_path, meta_path = save_checkpoint(tmp_path / "run.v1" / "detector", model, extra={"task": "semantic", "steps": 7})
    assert weights_path.name == "detector.safetensors" and meta_path.name == "detector.json"
    loaded, extra = load_checkpoint(tmp_path / "run.v1" / "detector")
    assert extra == {"task": "semantic", "steps": 7}
    assert loaded.config == model.config
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_single_logit_binary_head_is_bce():
    model = tiny_detector("deeplabv3plus", 2, single_logit=True).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 2, 64, 64) and (logits[:, 0] == 0).all()
    target = torch.randint(0, 2, (2, 64, 64))
    ce = model.loss(model(torch.rand(2, 3, 64, 64), return_outputs=True)._replace(pixel_logits=logits), target, torch.zeros(2, dtype=torch.long))[0]
    bce = F.binary_cross_entropy_with_logits(logits[:, 1], target.float())
    torch.testing.assert_close(ce, bce)
    with pytest.raises(ValueError, match="single_logit"):
        tiny_detector("segformer", 3, single_logit=True)


def test_detector_from_state_rejects_a_state_of_another_architecture():
    state, _ = detector_state(tiny_detector("segformer", 2))
    with pytest.raises(RuntimeError):
        detector_from_state(state, {"name": "deeplabv3plus", "num_classes": 2, **TINY["deeplabv3plus"]})


def test_unknown_name_lists_the_known_detectors():
    with pytest.raises(UnknownNameError) as error:
        create_detector("unet9000", num_classes=2)
    for name in list_detectors():
        assert name in str(error.value)


@pytest.mark.parametrize("name", ["segformer", "nfa_vit", "maskclip", "universal_fake_det"])
def test_random_init_is_announced(name, caplog):
    with caplog.at_level(logging.WARNING, logger="models.detectors"):
        tiny_detector(name, 2)
    assert any("random" in r.getMessage() for r in caplog.records)


def test_rebuilding_from_a_checkpoint_reads_no_weight_file_and_warns_nothing(tmp_path, caplog):
    model = tiny_detector("nfa_vit", 2)
    state, config = detector_state(model)
    config = {**config, "noiseprint_weights": str(tmp_path / "gone.safetensors"), "image_encoder_weights": str(tmp_path / "gone2.pt")}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="models.detectors"):
        rebuilt = detector_from_state(state, config)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert rebuilt.config == config


@pytest.mark.parametrize(
    ("name", "suffix"), [("deeplabv3plus", ".safetensors"), ("segformer", ".pt"), ("fcn8s", ".safetensors")]
)
def test_encoder_weights_load_from_a_local_file(name, suffix, tmp_path):
    source = tiny_detector(name, 2).network.encoder.state_dict()
    path = tmp_path / f"encoder{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    else:
        # An ImageNet-style file carries a classifier head the encoder lacks: it must be ignored.
        torch.save({**source, "head.weight": torch.zeros(10, 4)}, path)

    model = tiny_detector(name, 2, encoder_weights=path)
    loaded = model.network.encoder.state_dict()
    assert loaded.keys() == source.keys()
    for key in source:
        assert torch.equal(loaded[key], source[key]), key
    assert model.config["encoder_weights"] == str(path)


def test_nfa_vit_branches_take_smp_mit_weights_and_cnnspot_torchvision_weights(tmp_path):
    mit = create_detector("segformer", 2, encoder_name="mit_b0").network.encoder.state_dict()
    path = tmp_path / "mit_b0.safetensors"
    save_file({k: v.contiguous() for k, v in mit.items()}, str(path))
    model = tiny_detector("nfa_vit", 2, image_encoder_weights=str(path), noise_encoder_weights=str(path))
    for branch in (model.network.image_encoder, model.network.noise_encoder):
        assert all(torch.equal(branch.state_dict()[k], v) for k, v in mit.items())

    import torchvision

    resnet = torchvision.models.resnet18(weights=None).state_dict()  # keys incl. the 1000-way fc
    torch.save(resnet, tmp_path / "resnet18.pth")
    spot = tiny_detector("cnnspot", 2, encoder_weights=str(tmp_path / "resnet18.pth"))
    assert torch.equal(spot.network.resnet.conv1.weight, resnet["conv1.weight"])
    assert spot.network.resnet.fc.out_features == 1


def test_noiseprint_weights_load_with_any_prefix_and_freeze_the_extractor(tmp_path):
    source = NoiseResidualExtractor(levels=3, features=8)
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
    path = tmp_path / "np++.safetensors"
    save_file({f"dncnn.{k}": v.contiguous() for k, v in source.layers.state_dict().items()}, str(path))
    model = tiny_detector("nfa_vit", 2, noiseprint_weights=str(path)).train()
    extractor = model.network.noise_extractor
    for key, value in source.layers.state_dict().items():
        assert torch.equal(extractor.layers.state_dict()[key], value), key
    assert not any(p.requires_grad for p in extractor.parameters())
    assert not extractor.training  # BatchNorm statistics stay those of the file while the detector trains
    with pytest.raises(ValueError, match="DnCNN"):
        tiny_detector("nfa_vit", 2, noiseprint_weights=str(path), noise_levels=4)


def test_least_similar_mask_keeps_the_k_lowest_logits_per_query():
    logits = torch.tensor([[[[0.9, 0.1, 0.5, -2.0], [3.0, 2.0, 1.0, 0.0]]]])  # (1, 1 head, 2 queries, 4 keys)
    mask = least_similar_mask(logits, 0.5)
    assert mask.tolist() == [[[[False, True, False, True], [False, False, True, True]]]]
    assert least_similar_mask(logits, 0.25).sum(-1).tolist() == [[[1, 1]]]
    with pytest.raises(ValueError, match="topk_ratio"):
        tiny_detector("nfa_vit", 2, topk_ratio=0.0)


def test_nfa_vit_image_branch_attends_only_to_the_noise_selected_keys():
    """Changing image tokens at keys the noise mask excludes must not change the attention output
    of the queries restricted to other keys (the NAA constraint of eq. 4), and must when the mask
    is absent. Tested on the attention itself: the block's Mix-FFN (a 3x3 depthwise conv) mixes
    neighbouring tokens anyway."""
    from models.detectors.nfa_vit import _stages, masked_attention

    network = tiny_detector("nfa_vit", 2).network.eval()
    _, blocks, _ = _stages(network.image_encoder)[3]  # stage 4: no spatial reduction, keys = tokens
    attn = blocks[-1].attn
    y = torch.rand(1, 4, attn.dim)  # a 2 x 2 grid of normalised tokens
    keep = torch.zeros(1, attn.num_heads, 4, 4, dtype=torch.bool)
    keep[..., :2] = True  # every query may attend to tokens 0 and 1 only
    changed = y.clone()
    changed[:, 2:] += torch.rand(2, attn.dim)  # tokens 2 and 3
    with torch.no_grad():
        base, _ = masked_attention(attn, y, 2, 2, keep)
        other, _ = masked_attention(attn, changed, 2, 2, keep)
        free, _ = masked_attention(attn, y, 2, 2, None)
        free_changed, _ = masked_attention(attn, changed, 2, 2, None)
    torch.testing.assert_close(base[:, :2], other[:, :2])  # queries 0, 1 only see tokens 0, 1
    assert not torch.allclose(free[:, :2], free_changed[:, :2])


def test_maskclip_edge_band_and_mae_weights(tmp_path):
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12] = 1
    target[:, 0, :] = IGNORE_INDEX
    band = edge_band(target, 3)
    assert band[0, 8, 8].item() is False and band[0, 4, 8].item() is True and band[0, 3, 8].item() is True
    assert not band[0, 0].any()

    model = tiny_detector("maskclip", 2)
    vit = model.network.mae
    state = {k: v.clone() for k, v in vit.state_dict().items()}
    grid = vit.patch_embed.grid_size
    # An MAE-style file: a [CLS] token, its position first, a decoder key the encoder lacks.
    pos = torch.cat([torch.zeros(1, 1, vit.embed_dim), state["pos_embed"]], dim=1)
    save_file({**state, "pos_embed": pos.contiguous(), "cls_token": torch.zeros(1, 1, vit.embed_dim),
               "decoder_embed.weight": torch.zeros(2, 2)}, str(tmp_path / "mae.safetensors"))
    fresh = tiny_detector("maskclip", 2, mae_weights=str(tmp_path / "mae.safetensors")).network.mae
    assert fresh.patch_embed.grid_size == grid
    torch.testing.assert_close(fresh.pos_embed, state["pos_embed"])
    torch.testing.assert_close(fresh.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"])


def test_clip_loads_from_a_local_folder_and_checkpoints_rebuild_without_it(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    folder = tmp_path / "clip"
    CLIPModel(CLIPConfig(**TINY_CLIP)).save_pretrained(folder)
    for name in ("maskclip", "universal_fake_det"):
        kwargs = {k: v for k, v in TINY[name].items() if k != "clip_config"}
        model = create_detector(name, 2, clip_model=str(folder), **kwargs).eval()
        assert model.config["clip_model"] == str(folder) and "clip_config" in model.config  # recorded for rebuilds
        state, config = detector_state(model)
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            expected = model(x)
        moved = tmp_path / "moved"
        folder.rename(moved)
        try:
            with torch.no_grad():
                torch.testing.assert_close(detector_from_state(state, config).eval()(x), expected)
        finally:
            moved.rename(folder)


def test_clip_is_never_downloaded():
    # HF_HUB_OFFLINE=1 (conftest): an id that is not in the local cache is a clear error, at once.
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        create_detector("universal_fake_det", 2, clip_model="openai/clip-vit-large-patch14-not-cached")


def test_frozen_parts_stay_frozen_and_in_eval_mode():
    model = tiny_detector("maskclip", 2).train()
    assert not any(p.requires_grad for p in model.network.clip.parameters())
    assert not model.network.clip.module.training
    assert model.network.prompts.context.requires_grad and model.network.mae.training
    probe = tiny_detector("universal_fake_det", 2)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["network.fc.weight", "network.fc.bias"]


def test_fcn8s_convolutionalises_vgg_classifier_weights(tmp_path):
    # A torchvision-layout VGG16 file: features.* plus the fully connected classifier.0/.3, here
    # with 8 instead of 4096 units so the test stays small (fc_channels=8 matches it).
    features = tiny_detector("fcn8s", 2).network.encoder.state_dict()
    classifier = {
        "classifier.0.weight": torch.randn(8, 512 * 7 * 7),
        "classifier.0.bias": torch.randn(8),
        "classifier.3.weight": torch.randn(8, 8),
        "classifier.3.bias": torch.randn(8),
    }
    path = tmp_path / "vgg16.safetensors"
    save_file({**features, **classifier}, str(path))
    fcn = create_detector("fcn8s", num_classes=2, fc_channels=8, encoder_weights=str(path)).network
    assert torch.equal(fcn.encoder.features[0].weight, features["features.0.weight"])
    assert torch.equal(fcn.fc6[0].weight.flatten(1), classifier["classifier.0.weight"])
    assert torch.equal(fcn.fc6[0].bias, classifier["classifier.0.bias"])
    assert torch.equal(fcn.fc7[0].weight.flatten(1), classifier["classifier.3.weight"])


def test_encoder_weights_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError):
        tiny_detector("segformer", 2, encoder_weights=str(tmp_path / "missing.safetensors"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"not_a_key": torch.zeros(3)}, str(wrong))
    with pytest.raises(ValueError, match="lacks"):
        tiny_detector("segformer", 2, encoder_weights=str(wrong))


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_weight_files_are_never_unpickled_as_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Boom()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|global"):
        read_weights_file(path)


def test_targets_for_task():
    label_map = np.array([[0, 1], [3, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(targets_for_task(label_map, "binary"), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(targets_for_task(label_map, "semantic"), [[0, 1], [3, 0]])
    assert targets_for_task(label_map, "binary").dtype == np.int64
    with pytest.raises(ValueError, match="binary"):
        targets_for_task(label_map, "instance")


@pytest.mark.parametrize("name", ["segformer", "nfa_vit", "cnnspot"])
def test_predict_uses_the_models_own_image_score_when_it_has_one(name):
    model = tiny_detector(name, 3).train()
    images = [np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8) for i in range(5)]
    probabilities, scores = predict(model, images, batch_size=2)
    assert probabilities.shape == (5, 3, 32, 32) and probabilities.dtype == np.float32
    assert scores.shape == (5,) and scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.training  # mode restored
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        model.eval()
        if model.has_image_head:
            expected = torch.sigmoid(model.forward_with_image(x)[1]).numpy()
        else:
            expected = (1 - probabilities[:, 0]).reshape(5, -1).max(axis=1)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    floats = [image.astype(np.float32) / 255 for image in images]
    np.testing.assert_allclose(predict(model, floats)[0], probabilities, atol=1e-5)
    with pytest.raises(ValueError, match="one size"):
        predict(model, images[:1] + [np.zeros((64, 64, 3), np.uint8)])


def test_a_frozen_random_clip_is_refused_unless_asked_for():
    for name in ("maskclip", "universal_fake_det"):
        kwargs = {k: v for k, v in TINY[name].items() if k != "random_init"}
        with pytest.raises(ValueError, match="FROZEN CLIP would keep random weights"):
            create_detector(name, 2, **kwargs)
        assert create_detector(name, 2, **kwargs, random_init=True).config["random_init"] is True


def _cache_smp_weights(cache: Path, encoder_name: str, state: dict) -> None:
    """Write ``state`` where huggingface_hub looks for smp's pinned ImageNet weights of the encoder."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    settings = smp.encoders.encoders[encoder_name]["pretrained_settings"]["imagenet"]
    snapshot = cache / f"models--{settings['repo_id'].replace('/', '--')}" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text("{}")


@pytest.mark.parametrize("name", ["deeplabv3plus", "segformer"])
def test_smp_imagenet_weights_come_from_the_hub_cache(tmp_path, monkeypatch, name):
    # HF_HUB_OFFLINE=1: the weights are read from the (temporary) cache, never downloaded.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    encoder_name = TINY[name]["encoder_name"]
    source = tiny_detector(name, 2).network.encoder.state_dict()
    source = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.items()}
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        tiny_detector(name, 2, encoder_weights="imagenet")
    _cache_smp_weights(tmp_path, encoder_name, source)
    loaded = tiny_detector(name, 2, encoder_weights="imagenet").network.encoder.state_dict()
    for key, value in source.items():
        torch.testing.assert_close(loaded[key], value)
    with pytest.raises(ValueError, match="no pretrained weights 'nonsense'"):
        tiny_detector(name, 2, encoder_weights="nonsense")


def test_torchvision_imagenet_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not in torch.hub's cache"):
        tiny_detector("cnnspot", 2, encoder_weights="imagenet")
    source = torchvision.models.resnet18(weights=None).state_dict()
    source = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.items()}
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source, tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    loaded = tiny_detector("cnnspot", 2, encoder_weights="imagenet").network.resnet.state_dict()
    for key, value in source.items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value)
    with pytest.raises(ValueError, match="no weights 'nonsense'"):
        tiny_detector("cnnspot", 2, encoder_weights="nonsense")


def test_clip_hub_id_is_read_from_the_local_hub_cache(tmp_path, monkeypatch):
    # HF_HUB_OFFLINE=1 (conftest): a hub id resolves in the (temporary) cache, in the hub's layout.
    from transformers import CLIPConfig, CLIPModel

    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-clip"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    source = CLIPModel(CLIPConfig(**TINY_CLIP))
    source.save_pretrained(repo / "snapshots" / commit)
    model = create_detector("universal_fake_det", 2, clip_model="tiny-org/tiny-clip")
    loaded = model.network.clip.module.state_dict()
    expected = {k.removeprefix("vision_model."): v for k, v in source.vision_model.state_dict().items()}
    for key, value in expected.items():
        torch.testing.assert_close(loaded[f"vision_model.{key}"], value)
    torch.testing.assert_close(model.network.clip.module.visual_projection.weight, source.visual_projection.weight)


def test_skip_random_init_only_while_a_full_state_dict_follows():
    """A reload skips the initialisers' draws (their values are overwritten) and gives back the
    exact weights; the initialisers are themselves again afterwards, even after an error."""
    import timm.layers.weight_init as timm_init

    from models.detectors.checkpoint import skip_random_init

    originals = (torch.nn.init.trunc_normal_, torch.nn.init.kaiming_uniform_, timm_init._trunc_normal_)
    with skip_random_init():
        filled = torch.full((64,), 7.0)
        torch.nn.init.kaiming_uniform_(filled.view(8, 8))
        torch.nn.init.trunc_normal_(filled)
        assert torch.all(filled == 7.0)
    with pytest.raises(RuntimeError, match="boom"), skip_random_init():
        raise RuntimeError("boom")
    assert (torch.nn.init.trunc_normal_, torch.nn.init.kaiming_uniform_, timm_init._trunc_normal_) == originals
    assert torch.nn.init.trunc_normal_(torch.zeros(1000)).std() > 0.5

    torch.manual_seed(0)
    model = create_detector("segformer", 3, **TINY["segformer"])
    state, config = detector_state(model)
    rebuilt = detector_from_state(state, config)
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in state.items())
