"""The luma DCT coefficients a baseline JPEG encoder would write for an image, computed in torch.

CAT-Net (Kwon et al., IJCV 2022, "Learning JPEG Compression Artifacts for Image Manipulation
Detection and Localization", sec. 3.2) reads the QUANTISED Y-channel DCT coefficients and the Y
quantisation table of a JPEG file (its datasets use ``jpegio``). Our samples are decoded RGB
arrays, so the adapter encodes them here the way libjpeg does (ITU-T T.81 / JFIF):

1. RGB -> Y with the JFIF weights (0.299, 0.587, 0.114) in libjpeg's fixed point, rounded;
2. level shift by -128;
3. 8x8 block DCT-II, orthonormal (T.81 A.3.3: F(u, v) = C(u) C(v) / 4 sum f(x, y) cos cos);
4. division by the quantisation table, rounded half away from zero (libjpeg's ``quantize``).

The table is the IJG one for a quality (T.81 Annex K table K.1 scaled as libjpeg's
``jpeg_quality_scaling`` does, clamped to [1, 255]); quality 100 gives the all-ones table.
libjpeg's default DCT is an integer approximation (``JDCT_ISLOW``), so a real encoder's
coefficients can differ from these by one where a value sits near a rounding boundary
(``tests/models/test_zoo_extra.py`` measures it against Pillow's encoder).

Coefficients are laid out like ``jpegio``'s ``coef_arrays`` (what CAT-Net reads): block (i, j)
occupies rows 8i..8i+7, columns 8j..8j+7, and the coefficient of vertical frequency u and
horizontal frequency v sits at (8i + u, 8j + v). Tables are (8, 8) in natural (row = u) order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# ITU-T T.81 Annex K, table K.1 (luminance), natural order.
LUMA_BASE_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)

# JFIF's RGB -> Y weights in libjpeg's fixed point (``jccolor.c``: FIX(x) = round(x * 2^16)),
# so Y comes out as an encoder computes it, with no floating-point ties.
LUMA_WEIGHTS_FIXED = (19595, 38470, 7471)  # 0.299, 0.587, 0.114


def luma_qtable(quality: int) -> np.ndarray:
    """The IJG luminance quantisation table for ``quality`` (libjpeg, Pillow and most encoders).

    Returns:
        int64 (8, 8), natural order, values in [1, 255] (all ones at quality 100).
    Raises:
        ValueError: ``quality`` is not an integer in [1, 100].
    """
    if int(quality) != quality or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((LUMA_BASE_TABLE * scale + 50) // 100, 1, 255)


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (n, n): coefficients of a block B are D @ B @ D.T."""
    k = torch.arange(n, dtype=dtype)[:, None]
    x = torch.arange(n, dtype=dtype)[None, :]
    matrix = torch.cos(math.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix


def rgb_to_luma(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) 8-bit sample values ([0, 255], rounded first if not integers) -> (B, H, W)
    float64 Y samples, libjpeg's ``(19595 R + 38470 G + 7471 B + 2^15) >> 16``."""
    weights = torch.tensor(LUMA_WEIGHTS_FIXED, dtype=torch.int64, device=rgb.device)
    samples = rgb.round().clamp(0, 255).to(torch.int64)
    luma = ((samples * weights.view(1, 3, 1, 1)).sum(1) + (1 << 15)) >> 16
    return luma.to(torch.float64)


def luma_block_dct(rgb: torch.Tensor) -> torch.Tensor:
    """Unquantised 8x8 block DCT-II of the level-shifted Y channel of ``rgb``.

    Args:
        rgb: float (B, 3, H, W), 8-bit sample values in [0, 255] (not normalised); H and W
            multiples of 8 (a JPEG pads partial blocks; the adapter feeds multiples of 32).
    Returns:
        float64 (B, H, W) coefficients, ``jpegio``'s block layout (module docstring).
    Raises:
        ValueError: ``rgb`` is not (B, 3, H, W) with sides multiples of 8.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.shape[-2] % 8 or rgb.shape[-1] % 8:
        raise ValueError(f"expected (B, 3, H, W) with H and W multiples of 8, got {tuple(rgb.shape)}")
    batch, _, height, width = rgb.shape
    shifted = rgb_to_luma(rgb) - 128.0
    blocks = shifted.reshape(batch, height // 8, 8, width // 8, 8).permute(0, 1, 3, 2, 4)  # B, I, J, x, y
    d = dct_matrix(8, torch.float64).to(rgb.device)
    coefficients = d @ blocks @ d.T  # B, I, J, u, v
    return coefficients.permute(0, 1, 3, 2, 4).reshape(batch, height, width)


def quantise(coefficients: torch.Tensor, qtable: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Divide each 8x8 block of (B, H, W) ``coefficients`` by ``qtable`` (8, 8) and round half
    away from zero, as libjpeg's ``quantize`` does. Returns float64 integer values."""
    _, height, width = coefficients.shape
    table = torch.as_tensor(np.asarray(qtable), dtype=torch.float64, device=coefficients.device)
    scaled = coefficients.to(torch.float64) / table.repeat(height // 8, width // 8)
    return torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)


def luma_dct_coefficients(rgb: torch.Tensor, qtable: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Quantised Y DCT coefficients of ``rgb`` (B, 3, H, W, values in [0, 255], sides multiples
    of 8) as a JPEG encoder with ``qtable`` computes them: float64 (B, H, W), integer values,
    ``jpegio``'s layout. Raises ValueError as ``luma_block_dct``."""
    return quantise(luma_block_dct(rgb), qtable)


def dequantised_luma(coefficients: torch.Tensor, qtable: np.ndarray | torch.Tensor) -> torch.Tensor:
    """What a decoder reconstructs from ``luma_dct_coefficients``: (B, H, W) float64 Y samples,
    dequantised, inverse DCT, level shift undone (not rounded or clipped)."""
    batch, height, width = coefficients.shape
    blocks = coefficients.to(torch.float64).reshape(batch, height // 8, 8, width // 8, 8).permute(0, 1, 3, 2, 4)
    table = torch.as_tensor(np.asarray(qtable), dtype=torch.float64, device=coefficients.device)
    d = dct_matrix(8, torch.float64).to(coefficients.device)
    pixels = d.T @ (blocks * table) @ d + 128.0
    return pixels.permute(0, 1, 3, 2, 4).reshape(batch, height, width)
