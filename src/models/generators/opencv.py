"""Classical (non-learned) inpainters from OpenCV: Telea's fast marching and Navier-Stokes.

They ignore the prompt and the seed; they are cheap stand-ins for a "non-diffusion" edit class
and let the whole benchmark pipeline run without any model weights.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import GENERATORS, InpaintGenerator

_METHODS = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}


class OpenCVInpaintGenerator(InpaintGenerator):
    """``cv2.inpaint`` with ``method`` in {"telea", "navier_stokes"} and a neighbourhood ``radius`` in pixels.

    Raises:
        ValueError: unknown method or radius < 1.
    """

    def __init__(self, method: str, radius: int = 5):
        if method not in _METHODS:
            raise ValueError(f"unknown OpenCV inpaint method {method!r}; known: {sorted(_METHODS)}")
        if int(radius) < 1:
            raise ValueError(f"radius must be >= 1 pixel, got {radius}")
        self.name = method
        self.uses_seed = False  # deterministic: several seeds would give the same picture
        self.method = method
        self.radius = int(radius)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        # cv2.inpaint treats the three channels independently, so RGB order needs no conversion.
        return cv2.inpaint(
            np.ascontiguousarray(image), mask.astype(np.uint8) * 255, self.radius, _METHODS[self.method]
        )

    def __repr__(self) -> str:
        return f"OpenCVInpaintGenerator(method={self.method!r}, radius={self.radius})"


@GENERATORS.register("telea", description="OpenCV INPAINT_TELEA (fast marching); no prompt", supported=True)
def build_telea(radius: int = 5) -> OpenCVInpaintGenerator:
    """Telea fast-marching inpainter; ``radius`` is the neighbourhood in pixels."""
    return OpenCVInpaintGenerator("telea", radius=radius)


@GENERATORS.register("navier_stokes", description="OpenCV INPAINT_NS (Navier-Stokes); no prompt", supported=True)
def build_navier_stokes(radius: int = 5) -> OpenCVInpaintGenerator:
    """Navier-Stokes inpainter; ``radius`` is the neighbourhood in pixels."""
    return OpenCVInpaintGenerator("navier_stokes", radius=radius)
