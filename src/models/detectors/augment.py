"""Training-time augmentation of (image, target) pairs: random scale + crop, flips, and the
robustness degradations the seeds' detectors lacked (Gaussian blur, JPEG re-compression).

DiffSeg30k's DeepLabv3+ (trained without them) falls from semantic mIoU 0.760 to 0.013 under
JPEG 60; MaskCLIP and CNNSpot train with blur + JPEG. Everything here is numpy/OpenCV on one
sample, driven by the ``numpy.random.Generator`` it is given, so a sample's augmentation depends
only on that generator's seed (see ``training.py``: the seed is (run seed, micro-batch, slot),
whatever worker process decodes it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from .base import IGNORE_INDEX


@dataclass
class Augmentation:
    """Per-sample augmentation settings (probabilities in [0, 1]).

    hflip, vflip: probability of a horizontal / vertical flip.
    resize_prob, resize_range: probability of rescaling, and the scale range (log-uniform):
        the network sees the content at ``scale`` x its size (0.5-2x covers DiffSeg30k's
        resize-to-256 / resize-to-1024 robustness tests at 512 px). The output keeps the crop
        size (or the image size without cropping).
    blur_prob, blur_sigma: probability of a Gaussian blur and its sigma range in px (uniform).
    jpeg_prob, jpeg_quality: probability of JPEG re-compression and its quality range
        (uniform integers, inclusive).
    Blur comes before JPEG (CNNSpot's order); both touch the image only, never the labels.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    resize_prob: float = 0.0
    resize_range: tuple[float, float] = (0.5, 2.0)
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (50, 100)

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "resize_prob", "blur_prob", "jpeg_prob"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"augmentation {name} must be a probability in [0, 1], got {value}")
            setattr(self, name, value)
        for name in ("resize_range", "blur_sigma", "jpeg_quality"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"augmentation {name} must be [low, high] with low <= high, got {[low, high]}")
            setattr(self, name, (low, high))
        if self.resize_range[0] <= 0:
            raise ValueError(f"augmentation resize_range must be positive, got {list(self.resize_range)}")
        if self.blur_sigma[0] < 0:
            raise ValueError(f"augmentation blur_sigma must be >= 0, got {list(self.blur_sigma)}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"augmentation jpeg_quality must lie in [1, 100], got {list(self.jpeg_quality)}")

    @classmethod
    def from_settings(cls, *layers: dict[str, Any] | None) -> Augmentation:
        """Merge setting dicts, later ones winning field by field.

        Raises:
            ValueError: an unknown field (the message lists the known ones).
        """
        known = {f.name for f in fields(cls)}
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in (layer or {}).items():
                if key not in known:
                    raise ValueError(f"unknown augmentation setting {key!r}; known: {', '.join(sorted(known))}")
                merged[key] = value
        return cls(**merged)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same after a JPEG encode/decode at ``quality`` (OpenCV,
    4:2:0 chroma subsampling like most cameras and PIL's default)."""
    ok, payload = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to JPEG-encode an image")
    return cv2.imdecode(payload, cv2.IMREAD_COLOR)[:, :, ::-1]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px (kernel +-3 sigma); sigma <= 0: unchanged."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT101)


def _window(image: np.ndarray, target: np.ndarray, top: int, left: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The (height, width) window at (top, left), padded with 0 / IGNORE_INDEX outside the image."""
    img_h, img_w = target.shape
    out_image = np.zeros((height, width, 3), dtype=image.dtype)
    out_target = np.full((height, width), IGNORE_INDEX, dtype=target.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, img_h), min(left + width, img_w)
    if y1 > y0 and x1 > x0:
        out_image[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
        out_target[y0 - top : y1 - top, x0 - left : x1 - left] = target[y0:y1, x0:x1]
    return out_image, out_target


def augment_sample(
    image: np.ndarray, target: np.ndarray, crop_size: int | None, augmentation: Augmentation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scale + crop, flip, blur, JPEG one sample.

    Args:
        image: (H, W, 3) uint8.
        target: (H, W) int16/int32 class indices.
        crop_size: side of the square output; None keeps (H, W).
        augmentation: the settings.
        rng: drives every random choice.
    Returns:
        (image (S, S, 3) uint8, target (S, S) same dtype) with S = crop_size (or (H, W));
        pixels outside the source image are 0 / ``IGNORE_INDEX``. Contiguous arrays.
    """
    img_h, img_w = target.shape
    out_h, out_w = (crop_size, crop_size) if crop_size is not None else (img_h, img_w)
    scale = 1.0
    if augmentation.resize_prob and rng.random() < augmentation.resize_prob:
        low, high = augmentation.resize_range
        scale = math.exp(rng.uniform(math.log(low), math.log(high)))
    # The source window that becomes the output after scaling by `scale`.
    win_h, win_w = max(1, round(out_h / scale)), max(1, round(out_w / scale))
    top = int(rng.integers(0, img_h - win_h + 1)) if img_h >= win_h else -int(rng.integers(0, win_h - img_h + 1))
    left = int(rng.integers(0, img_w - win_w + 1)) if img_w >= win_w else -int(rng.integers(0, win_w - img_w + 1))
    if crop_size is None and scale == 1.0:
        top = left = 0
    if (top, left, win_h, win_w) == (0, 0, img_h, img_w):
        out_image, out_target = image, target
    else:
        out_image, out_target = _window(image, target, top, left, win_h, win_w)
    if (win_h, win_w) != (out_h, out_w):
        shrinking = win_h > out_h
        out_image = cv2.resize(out_image, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        out_target = cv2.resize(out_target, (out_w, out_h), interpolation=cv2.INTER_NEAREST)
    if augmentation.hflip and rng.random() < augmentation.hflip:
        out_image, out_target = out_image[:, ::-1], out_target[:, ::-1]
    if augmentation.vflip and rng.random() < augmentation.vflip:
        out_image, out_target = out_image[::-1], out_target[::-1]
    out_image = np.ascontiguousarray(out_image)
    if augmentation.blur_prob and rng.random() < augmentation.blur_prob:
        out_image = gaussian_blur(out_image, rng.uniform(*augmentation.blur_sigma))
    if augmentation.jpeg_prob and rng.random() < augmentation.jpeg_prob:
        low, high = augmentation.jpeg_quality
        out_image = jpeg_compress(out_image, int(rng.integers(low, high + 1)))
    return np.ascontiguousarray(out_image), np.ascontiguousarray(out_target)
