"""The detect pipeline: a small trained checkpoint on a folder of photos the test writes (one of
them broken, one not an image), through a KedroSession with the project's catalog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.detectors import create_detector
from models.detectors.checkpoint import detector_state
from models.detectors.training import TrainConfig, train_detector

NAMES = ["untouched", "telea", "navier_stokes", "tiny-sd"]


def _photo(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Camera-like noise on a smooth gradient."""
    ramp = np.linspace(40, 200, size)[None, :, None]
    return np.clip(ramp + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)


def _edited(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A photo whose left half is a flat fill (no noise), labelled generator 1."""
    image, label = _photo(rng), np.zeros((64, 64), np.uint8)
    image[:, :32] = image[:, :32].mean(axis=(0, 1)).astype(np.uint8)
    label[:, :32] = 1
    return image, label


@pytest.fixture(scope="module")
def checkpoint() -> dict:
    """srm_unet trained a few steps on flat-fill edits: small, real weights, not a stand-in."""
    import torch

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny net: one thread is faster, and far faster on a busy machine
    rng = np.random.default_rng(0)
    samples = [_edited(rng) for _ in range(4)] + [(_photo(rng), np.zeros((64, 64), np.uint8)) for _ in range(2)]
    model = create_detector("srm_unet", num_classes=len(NAMES), widths=[8, 16])
    history = train_detector(model, samples, TrainConfig(task="semantic", steps=30, batch_size=6, crop_size=None,
                                                         lr=0.01, hflip=False), progress=False)
    torch.set_num_threads(threads)
    assert history["loss"][-1] < history["loss"][0]
    state, detector = detector_state(model)
    return {"state": state, "config": {"task": "semantic", "class_names": NAMES, "detector": detector,
                                       "history": {"steps": 30, "stopped_by": "steps"}}}


def _write_inputs(folder: Path) -> None:
    rng = np.random.default_rng(1)
    (folder / "holiday").mkdir(parents=True)
    Image.fromarray(_edited(rng)[0]).save(folder / "edited.png")
    Image.fromarray(_photo(rng)).save(folder / "holiday" / "beach.jpg", quality=95)
    Image.fromarray(_photo(rng, 700)).save(folder / "large.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")


def test_detect_pipeline_writes_overlays_and_shares_and_skips_bad_files(project_copy: Path, checkpoint, tmp_path):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from pipelines.datasets import SafetensorsCheckpointDataset

    SafetensorsCheckpointDataset(filepath=str(project_copy / "data/06_models/detector_semantic.safetensors")).save(checkpoint)
    photos = tmp_path / "photos"
    _write_inputs(photos)
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, runtime_params={"detect": {"input": str(photos), "max_side": 256}}) as session:
        session.run(pipeline_name="detect")

    out = project_copy / "data" / "07_model_output" / "detect"
    index = json.loads((out / "index.json").read_text())
    assert index["n_images"] == 3 and index["n_skipped"] == 2
    reasons = {Path(s["file"]).name: s["reason"] for s in index["skipped"]}
    assert "broken.jpg" in reasons["broken.jpg"] and "not an image" in reasons["notes.txt"]
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["edited.png", "holiday__beach.png", "large.png"]

    edited = json.loads((out / "results" / "edited.json").read_text())
    assert set(edited["generator_shares"]) == set(NAMES[1:])
    assert edited["edited_share"] == pytest.approx(sum(edited["generator_shares"].values()))
    assert 0.0 <= edited["image_score"] <= 1.0
    # the trained detector finds the flat half-image fill and calls it generator 1
    assert edited["generator_shares"]["telea"] > 0.3
    beach = json.loads((out / "results" / "holiday__beach.json").read_text())
    assert beach["edited_share"] < edited["edited_share"]
    large = json.loads((out / "results" / "large.json").read_text())
    assert large["analysed_size"] == [256, 256]
    overlay = np.asarray(Image.open(out / "overlays" / "edited.png"))
    assert overlay.shape == (64 + 18, 64, 3)
    # predicted-edited pixels are tinted, so the overlay differs from the photo there
    assert np.abs(overlay[:64].astype(int) - np.asarray(Image.open(photos / "edited.png")).astype(int)).max() > 20


def test_detect_names_a_missing_input(tmp_path, checkpoint):
    from pipelines.detect.nodes import detect_edits

    with pytest.raises(FileNotFoundError, match="nowhere"):
        detect_edits(checkpoint, {"input": str(tmp_path / "nowhere")})
