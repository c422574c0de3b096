"""Every registered detector through one interface, checkpoints, local weights, the trainer."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from models.detectors import (
    SegmentationDetector,
    UnknownNameError,
    create_detector,
    detector_from_state,
    detector_state,
    list_detectors,
    load_checkpoint,
    save_checkpoint,
)
from models.detectors.training import TrainConfig, predict, targets_for_task, train_detector

# Small widths so every entry runs in well under a second on a CPU; the architectures are the real ones.
TINY = {
    "deeplabv3plus": {"encoder_name": "resnet18", "decoder_channels": 32},
    "segformer": {"encoder_name": "mit_b0", "decoder_segmentation_channels": 32},
    "fcn8s": {"fc_channels": 64},
}


def tiny_detector(name: str, num_classes: int, **kwargs) -> SegmentationDetector:
    return create_detector(name, num_classes=num_classes, **{**TINY.get(name, {}), **kwargs})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_registry_lists_the_three_seed_architectures():
    assert {"deeplabv3plus", "segformer", "fcn8s"} <= set(list_detectors())
    assert list_detectors() == sorted(list_detectors())


@pytest.mark.parametrize("num_classes", [2, 4], ids=["binary", "semantic"])
@pytest.mark.parametrize("name", list_detectors())
def test_forward_backward_and_image_scores(name, num_classes):
    model = tiny_detector(name, num_classes).train()
    assert model.num_classes == num_classes
    assert model.config == {"name": name, "num_classes": num_classes, **TINY.get(name, {})}
    x = torch.rand(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, num_classes, 64, 64)
    assert logits.dtype == torch.float32

    target = torch.randint(0, num_classes, (2, 64, 64))
    F.cross_entropy(logits, target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    scores = SegmentationDetector.image_scores(logits.detach())
    assert scores.shape == (2,)
    assert ((scores >= 0) & (scores <= 1)).all()
    expected = (1 - logits.detach().softmax(1)[:, 0]).flatten(1).max(1).values
    torch.testing.assert_close(scores, expected)


@pytest.mark.parametrize("name", list_detectors())
def test_any_input_size_is_padded_and_cropped_back(name):
    model = tiny_detector(name, 2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 50, 70)).shape == (1, 2, 50, 70)


@pytest.mark.parametrize("name", list_detectors())
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


def test_detector_from_state_rejects_a_state_of_another_architecture():
    state, _ = detector_state(tiny_detector("segformer", 2))
    with pytest.raises(RuntimeError):
        detector_from_state(state, {"name": "deeplabv3plus", "num_classes": 2, **TINY["deeplabv3plus"]})


def test_unknown_name_lists_the_known_detectors():
    with pytest.raises(UnknownNameError) as error:
        create_detector("unet9000", num_classes=2)
    for name in list_detectors():
        assert name in str(error.value)


def test_random_init_is_announced(caplog):
    with caplog.at_level(logging.WARNING, logger="models.detectors"):
        tiny_detector("segformer", 2)
    assert any("randomly initialised" in r.getMessage() for r in caplog.records)


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


def test_targets_for_task():
    label_map = np.array([[0, 1], [3, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(targets_for_task(label_map, "binary"), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(targets_for_task(label_map, "semantic"), [[0, 1], [3, 0]])
    assert targets_for_task(label_map, "binary").dtype == np.int64
    with pytest.raises(ValueError, match="binary"):
        targets_for_task(label_map, "instance")


def square_samples(n: int, size: int = 64, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Dim noisy images, each with a bright square labelled as edited (class 1)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        label_map = np.zeros((size, size), dtype=np.uint8)
        top, left = rng.integers(4, size // 2, 2)
        side = size // 3
        image[top : top + side, left : left + side] = 230
        label_map[top : top + side, left : left + side] = 1
        samples.append((image, label_map))
    return samples


def test_training_reduces_the_loss_on_a_tiny_set():
    model = tiny_detector("segformer", 2)
    cfg = TrainConfig(task="binary", steps=40, batch_size=2, lr=1e-3, warmup_steps=5, log_every=0)
    history = train_detector(model, square_samples(4), cfg, progress=False)
    assert history["steps"] == 40 and len(history["loss"]) == 40
    assert history["stopped_by"] == "steps"
    assert history["seconds"] > 0 and history["images_per_second"] > 0
    assert np.mean(history["loss"][-5:]) < 0.7 * np.mean(history["loss"][:5])
    assert model.training  # mode restored


def test_training_is_reproducible_with_a_seed():
    cfg = TrainConfig(task="semantic", steps=3, batch_size=2, crop_size=48, log_every=0)
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        model = tiny_detector("segformer", 2)
        losses.append(train_detector(model, square_samples(3), cfg, progress=False)["loss"])
    assert losses[0] == losses[1]


@pytest.mark.parametrize(("n_samples", "batch_size", "expected"), [(5, 4, 4), (3, 2, 2), (3, 8, 3)])
def test_training_never_forms_a_batch_of_one(n_samples, batch_size, expected):
    model = tiny_detector("deeplabv3plus", 2)
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    cfg = TrainConfig(task="binary", steps=3, batch_size=batch_size, warmup_steps=1, log_every=0)
    history = train_detector(model, square_samples(n_samples, size=32), cfg, progress=False)
    assert seen == [expected] * 3
    assert history["batch_size"] == expected


def test_training_refuses_what_it_cannot_do():
    model = tiny_detector("segformer", 2)
    with pytest.raises(ValueError, match="at least 2"):
        train_detector(model, square_samples(1), TrainConfig(task="binary", steps=1), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train_detector(model, square_samples(4), TrainConfig(task="binary", steps=1, batch_size=1), progress=False)
    semantic = [(image, label_map * 5) for image, label_map in square_samples(2)]
    with pytest.raises(ValueError, match="classes"):
        train_detector(model, semantic, TrainConfig(task="semantic", steps=1), progress=False)
    mixed = square_samples(1, size=32) + square_samples(1, size=64)
    with pytest.raises(ValueError, match="crop_size"):
        train_detector(model, mixed, TrainConfig(task="binary", steps=1), progress=False)


def test_time_budget_stops_training_early():
    model = tiny_detector("segformer", 2)
    cfg = TrainConfig(task="binary", steps=500, batch_size=2, time_budget_s=0.0, log_every=0)
    history = train_detector(model, square_samples(3, size=32), cfg, progress=False)
    assert history["stopped_by"] == "time_budget"
    assert history["steps"] == len(history["loss"]) < 500


def test_crops_of_mixed_sizes_train():
    model = tiny_detector("segformer", 2)
    samples = square_samples(2, size=32) + square_samples(2, size=64)
    history = train_detector(model, samples, TrainConfig(task="binary", steps=2, crop_size=48, log_every=0), progress=False)
    assert history["steps"] == 2 and all(np.isfinite(history["loss"]))


def test_predict_returns_probabilities_and_image_scores():
    model = tiny_detector("segformer", 3).train()
    images = [image for image, _ in square_samples(5, size=32)]
    probabilities, scores = predict(model, images, batch_size=2)
    assert probabilities.shape == (5, 3, 32, 32) and probabilities.dtype == np.float32
    assert scores.shape == (5,) and scores.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, (1 - probabilities[:, 0]).reshape(5, -1).max(axis=1), atol=1e-6)
    assert model.training  # mode restored
    floats = [image.astype(np.float32) / 255 for image in images]
    np.testing.assert_allclose(predict(model, floats)[0], probabilities, atol=1e-5)
    with pytest.raises(ValueError, match="one size"):
        predict(model, images[:1] + [square_samples(1, size=64)[0][0]])
