"""Quality scorers on a real photo and on degraded copies of it."""

from __future__ import annotations

import socket

import cv2
import numpy as np
import pytest
from skimage import data

from models.quality import QUALITY_SCORERS, create_quality_scorer, list_quality_scorers
from models.registry import UnknownNameError


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    clean = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0.0, 25.0, clean.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(clean, (0, 0), sigmaX=4.0)
    return {"clean": clean, "noisy": noisy, "blurred": blurred}


@pytest.fixture(scope="module")
def brisque():
    return create_quality_scorer("brisque")


def test_registry_lists_scorers():
    assert {"brisque", "sharpness"} <= set(list_quality_scorers())
    with pytest.raises(UnknownNameError, match="brisque.*sharpness"):
        create_quality_scorer("niqe")


@pytest.mark.parametrize("name", QUALITY_SCORERS.names())
def test_every_scorer_honours_the_interface(name, photos):
    scorer = create_quality_scorer(name)
    assert scorer.name == name
    assert isinstance(scorer.higher_is_better, bool)
    low, high = scorer.valid_range
    value = scorer.score(photos["clean"])
    assert isinstance(value, float) and np.isfinite(value)
    assert low <= value <= high


def test_brisque_prefers_the_clean_photo(brisque, photos):
    scores = {k: brisque.score(v) for k, v in photos.items()}
    assert all(np.isfinite(s) for s in scores.values()), scores
    assert brisque.higher_is_better is False
    assert scores["clean"] < scores["noisy"], scores
    assert scores["clean"] < scores["blurred"], scores
    # The seed's filter (BR-Gen drops BRISQUE > 60) keeps the clean photo and drops the blur.
    assert scores["clean"] < 60 < scores["blurred"], scores


def test_brisque_matches_the_brisque_package(brisque, photos):
    """Same features and model as brisque 0.2.0's own code path (with its numpy-2 bug bypassed)."""
    package = pytest.importorskip("brisque")

    class PackageBrisque(package.BRISQUE):
        # brisque 0.2.0 leaves 1-element arrays among its features; numpy 2 refuses float() on them.
        def calculate_brisque_features(self, image, kernel_size=7, sigma=7 / 6):
            features = super().calculate_brisque_features(image, kernel_size, sigma)
            return np.array([float(np.asarray(f).reshape(-1)[0]) for f in features])

    reference = PackageBrisque(url=False)
    for image in photos.values():
        assert brisque.score(image) == pytest.approx(reference.score(image), abs=0.05)


def test_brisque_needs_no_network(monkeypatch, photos):
    def refuse(*args, **kwargs):
        raise AssertionError("BRISQUE tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert np.isfinite(create_quality_scorer("brisque").score(photos["clean"]))


def test_sharpness_drops_with_blur(photos):
    sharpness = create_quality_scorer("sharpness")
    assert sharpness.higher_is_better is True
    assert sharpness.score(photos["blurred"]) < sharpness.score(photos["clean"])
    assert sharpness.score(np.full((16, 16, 3), 90, dtype=np.uint8)) == 0.0


@pytest.mark.parametrize("name", ["brisque", "sharpness"])
@pytest.mark.parametrize(
    ("image", "problem"),
    [
        (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((64, 64), dtype=np.uint8), "3 channels"),
        (np.zeros((64, 64, 4), dtype=np.uint8), "3 channels"),
        (np.zeros((2, 2, 3), dtype=np.uint8), "too small"),
    ],
)
def test_bad_input_raises(name, image, problem):
    with pytest.raises(ValueError, match=problem):
        create_quality_scorer(name).score(image)


def test_brisque_rejects_small_and_flat_images(brisque):
    with pytest.raises(ValueError, match="too small"):
        brisque.score(np.zeros((16, 300, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="flat"):
        brisque.score(np.full((64, 64, 3), 128, dtype=np.uint8))
