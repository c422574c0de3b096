"""Input checks shared by every model family that takes an RGB image."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_rgb_image(image: Any, what: str = "image", min_side: int = 1) -> None:
    """Raise unless ``image`` is an (H, W, 3) uint8 array with both sides >= ``min_side``.

    Raises:
        TypeError: not a numpy array.
        ValueError: wrong dtype, not 3 channels, or too small (the message says which).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H, W, 3) with 3 channels, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    if min(image.shape[:2]) < min_side:
        raise ValueError(
            f"{what} is too small: {image.shape[0]} x {image.shape[1]} pixels, need at least {min_side} on each side"
        )
