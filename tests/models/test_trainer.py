"""The Trainer's callbacks, its learning curve and saved history, determinism to the byte, the
ConfusionMatrix-based validation, and the size of the trainer's functions."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix

from models.detectors import create_detector
from models.detectors.inference import predict
from models.detectors.training import Callback, TrainConfig, Trainer, targets_for_task, train_detector, validate

from test_training import segformer  # noqa: E402  (tests/models is on sys.path under pytest)
from test_training import square_samples as binary_squares  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TIMING = {"seconds", "images_per_second", "checkpoint_dir"}


def square_samples(n: int, size: int = 32, seed: int = 0, classes: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """test_training's squares; sample i's square labelled 1 + i % (classes - 1)."""
    return [(image, label * (1 + i % (classes - 1))) for i, (image, label) in enumerate(binary_squares(n, size, seed))]


class Recorder(Callback):
    """Records every hook call; asks to stop after ``stop_at`` steps when given."""

    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def on_fit_start(self, trainer):
        self.calls.append(("start", trainer.state.step))

    def on_step_end(self, trainer):
        self.calls.append(("step", trainer.state.step, trainer.state.loss[-1]))
        if self.stop_at is not None and trainer.state.step >= self.stop_at:
            trainer.request_stop("recorder")

    def on_validation_end(self, trainer, record, improved):
        self.calls.append(("validation", record["step"], improved))

    def on_fit_end(self, trainer):
        self.calls.append(("end", trainer.state.step, trainer.state.stopped_by))

    def teardown(self, trainer):
        self.calls.append(("teardown",))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_callbacks_see_every_step_and_validation_and_can_stop_the_run():
    recorder = Recorder(stop_at=5)
    cfg = TrainConfig(task="binary", steps=20, batch_size=2, val_every=2, log_every=0)
    history = Trainer(segformer(), cfg, callbacks=[recorder], progress=False).fit(square_samples(4), square_samples(2, seed=5))
    kinds = [call[0] for call in recorder.calls]
    # Built-in callbacks run first: the step-2 validation is seen before the recorder's step 2.
    assert kinds == ["start", "step", "validation", "step", "step", "validation", "step", "step", "validation", "end", "teardown"]
    assert [c[1] for c in recorder.calls if c[0] == "step"] == [1, 2, 3, 4, 5]
    assert [c[2] for c in recorder.calls if c[0] == "step"] == history["loss"]
    assert recorder.calls[-2] == ("end", 5, "recorder")  # stopped_by is set before on_fit_end
    assert history["stopped_by"] == "recorder" and history["steps"] == 5
    assert [v["step"] for v in history["validation"]] == [2, 4, 5]  # the final validation at the stop step
    validations = [c for c in recorder.calls if c[0] == "validation"]
    assert [c[1] for c in validations] == [2, 4, 5] and validations[0][2] is True  # the first is always a new best


def test_teardown_runs_after_an_error_and_the_model_mode_is_restored():
    class Boom(Callback):
        def on_step_end(self, trainer):
            raise RuntimeError("boom at step %d" % trainer.state.step)

    recorder = Recorder()
    model = segformer().eval()
    with pytest.raises(RuntimeError, match="boom at step 1"):
        train_detector(model, square_samples(2), TrainConfig(task="binary", steps=3, log_every=0), progress=False,
                       callbacks=[recorder, Boom()])
    assert recorder.calls[-1] == ("teardown",) and ("end", 1, None) not in recorder.calls
    assert not model.training


def test_the_learning_curve_is_returned_and_saved_next_to_the_checkpoint(tmp_path):
    cfg = TrainConfig(task="binary", steps=6, batch_size=2, lr=1e-3, warmup_steps=1, val_every=2, log_every=0,
                      checkpoint_dir=str(tmp_path), checkpoint_every=4)
    history = train_detector(segformer(), square_samples(4), cfg, progress=False, val_samples=square_samples(2, seed=7))
    curve = history["learning_curve"]
    assert curve["step"] == [2, 4, 6]
    for key in ("miou", "pixel_accuracy", "image_accuracy"):
        assert curve[key] == [v[key] for v in history["validation"]]
    loss = history["loss"]
    assert curve["train_loss"] == pytest.approx([np.mean(loss[0:2]), np.mean(loss[2:4]), np.mean(loss[4:6])])
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["learning_curve"] == curve and saved["loss"] == loss and saved["stopped_by"] == "steps"
    assert saved["steps"] == 6 and saved["best"] == history["best"] and not TIMING & set(saved)


def test_the_same_seed_gives_the_same_checkpoint_bytes_and_history(tmp_path):
    histories, folders = [], []
    for run in ("a", "b"):
        torch.manual_seed(123)  # the model's initial weights
        cfg = TrainConfig(task="semantic", steps=4, batch_size=2, crop_size=24, val_every=2, log_every=0, seed=3,
                          checkpoint_dir=str(tmp_path / run), augment={"resize_prob": 1.0, "jpeg_prob": 0.5})
        histories.append(train_detector(segformer(3), square_samples(4, classes=3), cfg, progress=False,
                                        val_samples=square_samples(2, seed=9, classes=3)))
        folders.append(tmp_path / run)
    assert {k: v for k, v in histories[0].items() if k not in TIMING} == {k: v for k, v in histories[1].items() if k not in TIMING}
    files = sorted(p.relative_to(folders[0]) for p in folders[0].rglob("*") if p.is_file() and p.suffix != ".json")
    assert any(p.name == "train_state.safetensors" for p in files) and any(p.name == "detector.safetensors" for p in files)
    files.append(Path("history.json"))
    for name in files:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def _slow_scores(model, samples, task):
    """Reference: predict() + scikit-learn's confusion matrix, IoU class by class."""
    probabilities, scores = predict(model, [image for image, _ in samples])
    pred = probabilities.argmax(1).ravel()
    target = np.concatenate([targets_for_task(label, task).ravel() for _, label in samples])
    classes = model.num_classes
    matrix = confusion_matrix(target, pred, labels=list(range(classes)))
    ious = []
    for c in range(1, classes):
        union = matrix[c, :].sum() + matrix[:, c].sum() - matrix[c, c]
        if union:
            ious.append(matrix[c, c] / union)
    edited = np.array([label.any() for _, label in samples])
    return {"miou": float(np.mean(ious)) if ious else math.nan, "pixel_accuracy": float(np.trace(matrix) / matrix.sum()),
            "image_accuracy": float(np.mean((scores > 0.5) == edited))}


@pytest.mark.parametrize("task", ["binary", "semantic"])
def test_validation_scores_are_the_evaluation_metrics(task):
    classes = 2 if task == "binary" else 4
    model = segformer(classes)
    train_detector(model, square_samples(4, classes=classes), TrainConfig(task=task, steps=3, lr=1e-3, log_every=0), progress=False)
    samples = square_samples(5, seed=4, classes=classes) + [(np.full((32, 32, 3), 40, np.uint8), np.zeros((32, 32), np.uint8))]
    got = validate(model, samples, task, torch.device("cpu"), batch_size=4)
    expected = _slow_scores(model, samples, task)
    assert got == pytest.approx(expected, nan_ok=True)
    assert model.training  # mode restored


def test_validation_refuses_labels_beyond_the_classes_and_image_classifiers_have_no_pixel_scores():
    bad = [(image, label * 3) for image, label in square_samples(2)]
    with pytest.raises(ValueError, match="target"):
        validate(segformer(2), bad, "semantic", torch.device("cpu"))
    classifier = create_detector("cnnspot", 2, backbone="resnet18")
    scores = validate(classifier, square_samples(3), "binary", torch.device("cpu"))
    assert math.isnan(scores["miou"]) and math.isnan(scores["pixel_accuracy"]) and 0.0 <= scores["image_accuracy"] <= 1.0


def test_no_function_of_the_trainer_is_longer_than_80_lines():
    files = sorted((REPO / "src" / "models" / "detectors" / "training").glob("*.py"))
    files.append(REPO / "src" / "models" / "detectors" / "inference.py")
    assert len(files) >= 8
    long = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.name}:{node.lineno} {node.name}")
    assert not long, long


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_reference_optimisers_and_a_slower_encoder(optimizer):
    """DeepLabV3Plus-Pytorch / pytorch-fcn train with SGD + momentum and the ImageNet encoder at a
    tenth of the lr: the optimiser is the one asked for, the encoder's group follows the schedule at
    its ratio, and the encoder's weights move less than at ratio 1."""
    import torch

    from models.detectors import create_detector
    from models.detectors.training import TrainConfig, build_optimizer, lr_factor

    torch.manual_seed(0)
    model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18")
    cfg = TrainConfig(task="binary", steps=10, optimizer=optimizer, lr=0.01, encoder_lr_ratio=0.1, warmup_steps=0)
    opt = build_optimizer(model, cfg)
    assert type(opt).__name__ == {"sgd": "SGD", "adam": "Adam"}[optimizer]
    encoder, rest = opt.param_groups
    assert encoder["lr_scale"] == 0.1 and rest["lr_scale"] == 1.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("network.encoder.") for p in encoder["params"])
    assert not any(names[id(p)].startswith("network.encoder.") for p in rest["params"])
    assert len(encoder["params"]) + len(rest["params"]) == sum(1 for p in model.parameters() if p.requires_grad)
    if optimizer == "sgd":
        assert encoder["momentum"] == 0.9
    assert lr_factor(5, cfg) < 1.0
    with pytest.raises(ValueError, match="optimizer must be one of"):
        from models.detectors.training.config import check_config
        check_config(model, TrainConfig(task="binary", steps=1, optimizer="lion"))



def test_sgd_with_a_slower_encoder_trains_through_the_trainer():
    """Two SGD steps: the schedule gives the encoder a tenth of the decoder's lr; with ratio 1
    (the default: one parameter group) the encoder moves more from the same start."""
    from models.detectors.training import build_optimizer

    samples = binary_squares(8, 32)
    moved = {}
    for ratio in (0.1, 1.0):
        torch.manual_seed(0)
        model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18")
        start = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("network.encoder.")}
        cfg = TrainConfig(task="binary", steps=2, batch_size=4, optimizer="sgd", lr=0.05, encoder_lr_ratio=ratio,
                          warmup_steps=0, log_every=0, restore_best=False, augment={"hflip": 0.0})
        trainer = Trainer(model, cfg, progress=False)
        trainer.fit(samples)
        if ratio == 0.1:
            encoder, rest = trainer.optimizer.param_groups
            assert encoder["lr"] == pytest.approx(0.1 * rest["lr"]) and type(trainer.optimizer).__name__ == "SGD"
        moved[ratio] = sum(float((p.detach() - start[n]).abs().sum()) for n, p in model.named_parameters() if n in start)
    assert 0 < moved[0.1] < moved[1.0]
    assert len(build_optimizer(create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18"),
                               TrainConfig(task="binary", steps=1)).param_groups) == 1
