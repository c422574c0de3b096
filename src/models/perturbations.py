"""Post-processing perturbations for robustness evaluation, pure numpy + OpenCV.

Each perturbation maps an (H, W, 3) uint8 RGB image to an (H, W, 3) uint8 RGB image of the SAME
size, so the ground-truth label map stays valid. They reproduce the seeds' robustness protocols:

- ``jpeg``: JPEG compression at a quality factor (DiffSeg30k Table 3: 60 and 80; OpenSDI Fig. 5).
- ``resize``: resize by a factor and back to the original size (DiffSeg30k resizes 512 px images
  to 256 and 1024, factors 0.5 and 2). Area interpolation when shrinking, bilinear when growing.
- ``blur``: Gaussian blur with standard deviation ``sigma`` pixels (OpenSDI Fig. 5).

>>> from models.perturbations import perturb, list_perturbations
>>> list_perturbations()
['blur', 'jpeg', 'resize']
>>> degraded = perturb(image, "jpeg", 60)
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    """JPEG-compress and decode at ``quality`` in [1, 100] (OpenCV / libjpeg, 4:2:0 chroma).

    Raises:
        ValueError: not an (H, W, 3) uint8 image, or quality outside [1, 100].
    """
    image = _check_image(image)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    # OpenCV encodes BGR; converting keeps the YCbCr transform (and so the chroma loss) faithful.
    ok, payload = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    return cv2.cvtColor(cv2.imdecode(payload, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def resize(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (0.5 = half the side) and back to the original size.

    Raises:
        ValueError: not an (H, W, 3) uint8 image, or factor <= 0.
    """
    image = _check_image(image)
    if factor <= 0:
        raise ValueError(f"resize factor must be > 0, got {factor}")
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))

    def interpolation(grow: bool) -> int:
        return cv2.INTER_LINEAR if grow else cv2.INTER_AREA

    resized = cv2.resize(image, size, interpolation=interpolation(factor > 1))
    return cv2.resize(resized, (width, height), interpolation=interpolation(factor < 1))


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` px (kernel 2 * ceil(3 sigma) + 1, reflected
    borders); sigma 0 returns a copy.

    Raises:
        ValueError: not an (H, W, 3) uint8 image, or sigma < 0.
    """
    image = _check_image(image)
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return image.copy()
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (size, size), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT_101)


PERTURBATIONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {"jpeg": jpeg, "resize": resize, "blur": blur}


def list_perturbations() -> list[str]:
    """Sorted names accepted by ``perturb``."""
    return sorted(PERTURBATIONS)


def perturb(image: np.ndarray, name: str, level: float) -> np.ndarray:
    """Apply the perturbation ``name`` at ``level`` (JPEG quality, resize factor or blur sigma).

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ValueError: see the individual perturbations.
    """
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; known: {list_perturbations()}")
    return PERTURBATIONS[name](image, level)
