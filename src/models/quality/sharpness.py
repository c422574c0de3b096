"""Sharpness as the variance of the Laplacian: a cheap blur detector, higher = sharper."""

from __future__ import annotations

import cv2
import numpy as np

from .base import QUALITY_SCORERS, QualityScorer, check_image


class LaplacianSharpness(QualityScorer):
    """Variance of the 3x3 Laplacian of the grey image (values 0..255).

    0 for a flat image; a few tens for a blurred photo, hundreds to thousands for a sharp
    one (and for noise, which this measure cannot tell from detail).
    """

    name = "sharpness"
    higher_is_better = True
    valid_range = (0.0, float("inf"))
    min_side = 3

    def score(self, image: np.ndarray) -> float:
        """Laplacian variance of ``image`` ((H, W, 3) uint8 RGB, sides >= 3).

        Raises:
            TypeError / ValueError: not an (H, W, 3) uint8 array, or smaller than 3 x 3.
        """
        check_image(image, self.min_side)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var())


@QUALITY_SCORERS.register("sharpness", description="variance of the Laplacian (cv2)")
def build_sharpness() -> LaplacianSharpness:
    return LaplacianSharpness()
