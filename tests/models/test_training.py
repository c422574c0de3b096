"""The trainer: it learns, it is reproducible, it checkpoints, resumes after a SIGKILL, stops
early, accumulates gradients, decodes in worker processes, augments, and runs under DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.detectors import create_detector, load_checkpoint
from models.detectors.augment import Augmentation, augment_sample, jpeg_compress
from models.detectors.base import IGNORE_INDEX
from models.detectors.training import (
    StepBatchSampler,
    TrainConfig,
    checkpoint_path,
    dominant_class,
    lr_factor,
    train_detector,
)

REPO = Path(__file__).resolve().parents[2]
SEGFORMER = {"encoder_name": "mit_b0", "decoder_segmentation_channels": 32}
DEEPLAB = {"encoder_name": "resnet18", "decoder_channels": 32}


def segformer(num_classes: int = 2):
    return create_detector("segformer", num_classes=num_classes, **SEGFORMER)


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


class LazySamples:
    """A Sequence that 'decodes' on access (copies), like the train node's catalog-backed items."""

    def __init__(self, samples, delay_s: float = 0.0):
        self.samples, self.delay_s = samples, delay_s

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        if self.delay_s:
            time.sleep(self.delay_s)
        image, label_map = self.samples[index]
        return image.copy(), label_map.copy()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_training_reduces_the_loss_on_a_tiny_set():
    model = segformer()
    cfg = TrainConfig(task="binary", steps=40, batch_size=2, lr=1e-3, warmup_steps=5, log_every=0)
    history = train_detector(model, square_samples(4), cfg, progress=False)
    assert history["steps"] == 40 and len(history["loss"]) == 40
    assert history["stopped_by"] == "steps" and history["resumed_from"] is None
    assert history["seconds"] > 0 and history["images_per_second"] > 0
    assert np.mean(history["loss"][-5:]) < 0.7 * np.mean(history["loss"][:5])
    assert model.training  # mode restored


def test_an_image_head_model_learns_both_objectives():
    model = create_detector("cnnspot", num_classes=2, backbone="resnet18")
    samples = square_samples(4, size=32) + [(image, np.zeros_like(label)) for image, label in square_samples(4, size=32, seed=1)]
    cfg = TrainConfig(task="binary", steps=30, batch_size=4, lr=1e-3, warmup_steps=3, log_every=0,
                      augment={"blur_prob": 0.0, "jpeg_prob": 0.0})
    history = train_detector(model, samples, cfg, progress=False)
    assert np.mean(history["loss"][-5:]) < 0.7 * np.mean(history["loss"][:5])


def test_training_is_reproducible_with_a_seed():
    cfg = TrainConfig(task="semantic", steps=3, batch_size=2, crop_size=48, log_every=0,
                      augment={"resize_prob": 1.0, "blur_prob": 0.5, "jpeg_prob": 0.5})
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        losses.append(train_detector(segformer(), square_samples(3), cfg, progress=False)["loss"])
    assert losses[0] == losses[1]


def test_worker_processes_decode_the_same_batches_as_the_main_process():
    cfg = TrainConfig(task="binary", steps=3, batch_size=2, crop_size=48, log_every=0, augment={"jpeg_prob": 1.0})
    losses = []
    for workers in (0, 2):
        torch.manual_seed(1)
        history = train_detector(segformer(), LazySamples(square_samples(4)), TrainConfig(**{**cfg.as_dict(), "num_workers": workers}),
                                 progress=False)
        losses.append(history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


@pytest.mark.parametrize(("n_samples", "batch_size", "expected"), [(5, 4, 4), (3, 2, 2), (3, 8, 3)])
def test_training_never_forms_a_batch_of_one(n_samples, batch_size, expected):
    model = create_detector("deeplabv3plus", num_classes=2, **DEEPLAB)
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    cfg = TrainConfig(task="binary", steps=3, batch_size=batch_size, warmup_steps=1, log_every=0)
    history = train_detector(model, square_samples(n_samples, size=32), cfg, progress=False)
    assert seen == [expected] * 3
    assert history["batch_size"] == expected


def test_gradient_accumulation_runs_several_micro_batches_per_step():
    model = segformer()
    seen: list[int] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    cfg = TrainConfig(task="binary", steps=2, batch_size=2, grad_accum_steps=3, log_every=0)
    history = train_detector(model, square_samples(4, size=32), cfg, progress=False)
    assert seen == [2] * 6 and history["steps"] == 2 and history["images_per_step"] == 6


def test_training_refuses_what_it_cannot_do(tmp_path):
    model = segformer()
    with pytest.raises(ValueError, match="at least 2"):
        train_detector(model, square_samples(1), TrainConfig(task="binary", steps=1), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train_detector(model, square_samples(4), TrainConfig(task="binary", steps=1, batch_size=1), progress=False)
    semantic = [(image, label_map * 5) for image, label_map in square_samples(2)]
    with pytest.raises(ValueError, match="classes"):
        train_detector(model, semantic, TrainConfig(task="semantic", steps=1), progress=False)
    with pytest.raises(ValueError, match="classes"):  # a lazy sequence fails when the sample is decoded
        train_detector(model, LazySamples(semantic), TrainConfig(task="semantic", steps=1), progress=False)
    mixed = square_samples(1, size=32) + square_samples(1, size=64)
    with pytest.raises(ValueError, match="crop_size"):
        train_detector(model, mixed, TrainConfig(task="binary", steps=1), progress=False)
    with pytest.raises(ValueError, match="crop_size"):
        train_detector(model, LazySamples(mixed), TrainConfig(task="binary", steps=1), progress=False)
    with pytest.raises(ValueError, match="unknown augmentation setting 'jpg_prob'"):
        train_detector(model, square_samples(2), TrainConfig(task="binary", steps=1, augment={"jpg_prob": 0.5}), progress=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train_detector(model, square_samples(2), TrainConfig(task="binary", steps=1, resume=True), progress=False)
    classifier = create_detector("cnnspot", 2, backbone="resnet18")
    with pytest.raises(ValueError, match="pixel-level"):
        train_detector(classifier, square_samples(2), TrainConfig(task="binary", steps=1, monitor="miou"), progress=False)


def test_time_budget_stops_training_early():
    cfg = TrainConfig(task="binary", steps=500, batch_size=2, time_budget_s=0.0, log_every=0)
    history = train_detector(segformer(), square_samples(3, size=32), cfg, progress=False)
    assert history["stopped_by"] == "time_budget"
    assert history["steps"] == len(history["loss"]) < 500


def test_crops_of_mixed_sizes_train():
    samples = square_samples(2, size=32) + square_samples(2, size=64)
    history = train_detector(segformer(), samples, TrainConfig(task="binary", steps=2, crop_size=48, log_every=0), progress=False)
    assert history["steps"] == 2 and all(np.isfinite(history["loss"]))


def test_schedules_warm_up_then_decay_to_the_floor():
    poly = TrainConfig(task="binary", steps=100, warmup_steps=10)
    cosine = TrainConfig(task="binary", steps=100, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, poly) == pytest.approx(0.1) and lr_factor(9, poly) == pytest.approx(1.0)
    assert lr_factor(10, poly) == pytest.approx(1.0) and lr_factor(100, poly) == pytest.approx(0.0)
    assert lr_factor(55, cosine) == pytest.approx(0.1 + 0.9 * 0.5) and lr_factor(100, cosine) == pytest.approx(0.1)
    values = [lr_factor(s, cosine) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_batches_depend_only_on_seed_and_micro_batch():
    full = StepBatchSampler(10, 3, seed=5)
    stream = iter(full)
    first = [next(stream) for _ in range(7)]
    resumed = iter(StepBatchSampler(10, 3, seed=5, start=4))
    assert [next(resumed) for _ in range(3)] == first[4:]
    for epoch_start in (0, 3):  # 3 full batches per epoch: no image twice within an epoch
        indices = [key[2] for batch in first[epoch_start : epoch_start + 3] for key in batch]
        assert len(set(indices)) == 9
    # Two processes share each global batch without overlap.
    ranks = [next(iter(StepBatchSampler(10, 2, seed=5, rank=r, world_size=2))) for r in (0, 1)]
    assert not {k[2] for k in ranks[0]} & {k[2] for k in ranks[1]}


def test_augmentations_keep_shapes_and_labels_and_degrade_only_the_image():
    image, label_map = square_samples(1, size=64)[0]
    target = label_map.astype(np.int16)
    heavy = Augmentation(hflip=0.5, vflip=0.5, resize_prob=1.0, blur_prob=1.0, jpeg_prob=1.0, jpeg_quality=(50, 50))
    for seed in range(6):
        out_image, out_target = augment_sample(image, target, 48, heavy, np.random.default_rng(seed))
        assert out_image.shape == (48, 48, 3) and out_image.dtype == np.uint8 and out_target.shape == (48, 48)
        assert set(np.unique(out_target)) <= {0, 1, IGNORE_INDEX}
    # Blur and JPEG never move labels; only the scale/crop/flip do.
    photometric = Augmentation(hflip=0.0, blur_prob=1.0, jpeg_prob=1.0)
    out_image, out_target = augment_sample(image, target, None, photometric, np.random.default_rng(0))
    np.testing.assert_array_equal(out_target, target)
    assert 0 < np.abs(out_image.astype(int) - image.astype(int)).mean() < 40
    # Zooming out by 2 (scale 0.5) halves the edited square's side.
    zoom_out = Augmentation(hflip=0.0, resize_prob=1.0, resize_range=(0.5, 0.5))
    _, small = augment_sample(image, target, None, zoom_out, np.random.default_rng(0))
    assert small.shape == target.shape
    assert (small == 1).sum() == pytest.approx((target == 1).sum() / 4, rel=0.25)
    assert np.abs(jpeg_compress(image, 95).astype(int) - image).mean() < np.abs(jpeg_compress(image, 10).astype(int) - image).mean()
    with pytest.raises(ValueError, match="probability"):
        Augmentation(jpeg_prob=1.5)


def test_the_image_label_is_the_dominant_edited_class():
    assert dominant_class(np.array([[0, 0], [IGNORE_INDEX, 0]])) == 0
    assert dominant_class(np.array([[2, 2], [3, IGNORE_INDEX]])) == 2


def test_model_augmentation_defaults_fill_what_the_caller_leaves_unset():
    spot = create_detector("cnnspot", 2, backbone="resnet18")
    merged = Augmentation.from_settings(spot.train_augmentation, {"jpeg_prob": 0.1})
    assert merged.blur_prob == 0.5 and merged.jpeg_prob == 0.1 and merged.jpeg_quality == (30, 100)


def test_checkpoints_best_validation_early_stopping_and_restore(tmp_path):
    model = segformer()
    samples = square_samples(4, size=32)
    cfg = TrainConfig(task="binary", steps=30, batch_size=2, lr=1e-3, warmup_steps=2, log_every=0, checkpoint_dir=str(tmp_path),
                      checkpoint_every=4, val_every=3, early_stopping_patience=2, early_stopping_min_delta=1.0)
    history = train_detector(model, samples, cfg, progress=False, val_samples=square_samples(2, size=32, seed=9))
    # min_delta 1.0 can never be beaten: the first validation is the best, two more end the run
    # (and the step-9 validation is not repeated at the end).
    assert history["stopped_by"] == "early_stopping" and history["steps"] == 9
    assert [v["step"] for v in history["validation"]] == [3, 6, 9]
    assert history["best"]["step"] == 3 and history["best"]["monitor"] == "miou"
    best_stem, last_stem = checkpoint_path(tmp_path, "best"), checkpoint_path(tmp_path, "last")
    assert best_stem.parent.name == "best-00000003" and last_stem.parent.name == "step-00000009"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-00000003", "best.json", "history.json", "last.json", "step-00000009"]
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))  # safetensors + JSON only
    meta = json.loads(Path(str(best_stem) + ".json").read_text())
    assert meta["config"] == model.config and set(meta["extra"]["metrics"]) == {"miou", "pixel_accuracy", "image_accuracy"}
    # restore_best: the model now holds the step-3 weights.
    best_state = load_file(str(best_stem) + ".safetensors")
    assert all(torch.equal(best_state[k], v) for k, v in model.state_dict().items())
    loaded, extra = load_checkpoint(last_stem)
    assert extra["step"] == 9 and len(extra["history"]["loss"]) == 9


def test_resuming_with_another_model_config_is_refused(tmp_path):
    cfg = TrainConfig(task="binary", steps=2, batch_size=2, log_every=0, checkpoint_dir=str(tmp_path))
    train_detector(segformer(), square_samples(2, size=32), cfg, progress=False)
    other = create_detector("segformer", 2, encoder_name="mit_b0", decoder_segmentation_channels=16)
    with pytest.raises(ValueError, match="cannot resume"):
        train_detector(other, square_samples(2, size=32), TrainConfig(**{**cfg.as_dict(), "resume": True, "steps": 4}), progress=False)


CHILD = textwrap.dedent("""
    import sys, time, torch
    sys.path[:0] = [{tests!r}]
    from test_training import LazySamples, segformer, square_samples
    from models.detectors.training import TrainConfig, train_detector
    torch.manual_seed(0)
    cfg = TrainConfig(**{cfg!r})
    train_detector(segformer(), LazySamples(square_samples(4, size=32), delay_s=0.05), cfg, progress=False)
""")


def test_a_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    settings = {"task": "binary", "steps": 24, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2, "log_every": 0,
                "crop_size": 24, "checkpoint_every": 4, "checkpoint_dir": str(tmp_path / "killed")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(Path(__file__).parent), cfg=settings)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pointer = tmp_path / "killed" / "last.json"
    deadline = time.monotonic() + 120
    while not pointer.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    killed_at = json.loads(pointer.read_text())["step"]
    assert 0 < killed_at < 24

    torch.manual_seed(0)
    resumed = segformer()
    history = train_detector(resumed, LazySamples(square_samples(4, size=32)), TrainConfig(**{**settings, "resume": True}), progress=False)
    assert history["resumed_from"] >= killed_at and history["steps"] == 24 and len(history["loss"]) == 24
    loaded, extra = load_checkpoint(checkpoint_path(tmp_path / "killed"))
    assert extra["step"] == 24

    torch.manual_seed(0)
    straight = segformer()
    reference = train_detector(straight, LazySamples(square_samples(4, size=32)),
                               TrainConfig(**{**settings, "checkpoint_dir": str(tmp_path / "straight")}), progress=False)
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-4, atol=1e-6)
    for key, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_and_returns_rank_zero_weights():
    model = create_detector("deeplabv3plus", 2, **DEEPLAB)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(task="binary", steps=3, batch_size=2, log_every=0, distributed=2)
    history = train_detector(model, square_samples(4, size=32), cfg, progress=False)
    assert history["world_size"] == 2 and history["steps"] == 3 and history["images_per_step"] == 4
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
