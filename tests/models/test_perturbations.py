"""Robustness perturbations: same size and dtype out, against straightforward references."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image
from scipy import ndimage

from models.perturbations import blur, jpeg, list_perturbations, perturb, resize


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut()[::4, ::4])  # 128 x 128 RGB


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("name, level", [("jpeg", 60), ("jpeg", 80), ("resize", 0.5), ("resize", 2.0), ("blur", 1.0)])
def test_perturbations_keep_size_and_dtype(photo, name, level):
    out = perturb(photo, name, level)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert not np.array_equal(out, photo)


def test_jpeg_is_close_to_pillow_at_the_same_quality_and_degrades_with_it(photo):
    for quality in (60, 80):
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG", quality=quality)
        reference = np.asarray(Image.open(buffer).convert("RGB"))
        assert psnr(jpeg(photo, quality), reference) > 35  # both libjpeg, 4:2:0: nearly the same image
    assert psnr(jpeg(photo, 95), photo) > psnr(jpeg(photo, 80), photo) > psnr(jpeg(photo, 60), photo) > 25


def test_blur_matches_scipy_gaussian_filter(photo):
    for sigma in (0.5, 1.0, 2.0):
        reference = np.stack([ndimage.gaussian_filter(photo[..., c].astype(float), sigma, mode="mirror", truncate=3.0)
                              for c in range(3)], axis=-1)
        difference = np.abs(blur(photo, sigma).astype(float) - reference)
        assert difference.max() <= 2 and difference.mean() < 0.5  # OpenCV's 8-bit fixed point + rounding
    np.testing.assert_array_equal(blur(photo, 0), photo)


def test_resize_round_trip(photo):
    np.testing.assert_array_equal(resize(photo, 1.0), photo)
    flat = np.full((64, 64, 3), 77, np.uint8)
    np.testing.assert_array_equal(resize(flat, 0.5), flat)
    assert psnr(resize(photo, 2.0), photo) > psnr(resize(photo, 0.5), photo)  # shrinking loses detail


def test_bad_input_is_a_clear_error(photo):
    assert list_perturbations() == ["blur", "jpeg", "resize"]
    with pytest.raises(KeyError, match="known"):
        perturb(photo, "sharpen", 1)
    with pytest.raises(ValueError, match="quality"):
        jpeg(photo, 0)
    with pytest.raises(ValueError, match="uint8"):
        blur(photo.astype(np.float32), 1)
    with pytest.raises(ValueError, match="factor"):
        resize(photo, 0)
