"""Non-diffusion inpainters loaded from a local TorchScript file: LaMa and MAT (BR-Gen's GAN class).

Neither has a diffusers or transformers implementation, and this project ships no copy of their
architecture code, so a model is a TorchScript archive (``torch.jit.save``) read with
``torch.jit.load``: the file carries its own graph and weights, and nothing is unpickled into
arbitrary Python objects. The input/output contract is configurable; the defaults are those of
the widely used exports:

- ``lama``: ``big-lama.pt`` as exported by lama-cleaner / IOPaint: ``forward(image, mask)`` with
  image (1, 3, H, W) float in [0, 1], mask (1, 1, H, W) with 1 = hole, H and W multiples of 8;
  returns (1, 3, H, W) in [0, 1]. Any size.
- ``mat``: a MAT generator (Places 512) exported with ``forward(image, mask, z)``: image in
  [-1, 1], mask with 1 = KEEP, z (1, 512) standard normal (its style noise, drawn from the seed);
  fixed 512 x 512 input; returns (1, 3, 512, 512) in [-1, 1]. An export without ``z`` is used
  with ``noise_dim: 0``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..cache import process_cache
from .base import GENERATORS, InpaintGenerator
from .diffusion import _interpolation, check_dtype

_RANGES = ("0_1", "-1_1")
_MASK_MEANS = ("hole", "keep")


def load_torchscript(path: str | Path, device: str = "cpu", dtype: str = "float32") -> Any:
    """Load (once per process) the TorchScript module in ``path``, in eval mode on ``device``.

    Raises:
        FileNotFoundError: no such file.
        RuntimeError: the file is not a TorchScript archive (torch's message).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript model {path} does not exist")
    def build() -> Any:
        module = torch.jit.load(str(path), map_location=device)
        module.eval()
        return module if dtype == "float32" else module.to(getattr(torch, dtype))

    return process_cache().get(("torchscript", str(path.resolve()), str(device), dtype), build)


class TorchScriptInpaintGenerator(InpaintGenerator):
    """An inpainter in a TorchScript file; see the module docstring for the contract.

    Args:
        model: path of the TorchScript file (checked when the generator is built).
        resolution: run with the longer side at this many pixels (None = the image's size).
        square: run at resolution x resolution whatever the aspect ratio (MAT's fixed input).
        pad_multiple: pad (reflect) both sides up to a multiple of this before the call.
        image_range: "0_1" or "-1_1", the range of the input and output images.
        mask_means: "hole" (1 = repaint) or "keep" (1 = known pixel).
        noise_dim: if > 0, a third input z of shape (1, noise_dim), standard normal from the seed.
        device, dtype: where and in which precision the module runs.
        name: the registry name this instance reports.

    Raises:
        FileNotFoundError: ``model`` does not exist (the message says what file is expected).
        ValueError: a bad option value.
    """

    def __init__(self, model: str, resolution: int | None = None, square: bool = False, pad_multiple: int = 8,
                 image_range: str = "0_1", mask_means: str = "hole", noise_dim: int = 0, device: str = "cpu",
                 dtype: str = "float32", name: str = "torchscript", expected: str = "a TorchScript inpainting model"):
        if image_range not in _RANGES:
            raise ValueError(f"image_range must be one of {_RANGES}, got {image_range!r}")
        if mask_means not in _MASK_MEANS:
            raise ValueError(f"mask_means must be one of {_MASK_MEANS}, got {mask_means!r}")
        if int(pad_multiple) < 1 or int(noise_dim) < 0:
            raise ValueError(f"pad_multiple must be >= 1 and noise_dim >= 0, got {pad_multiple}, {noise_dim}")
        if square and resolution is None:
            raise ValueError("square needs a resolution")
        check_dtype(dtype)
        if not Path(model).is_file():
            raise FileNotFoundError(
                f"{name}: no TorchScript file at {model!r}; expected {expected}. Put the file there (or set "
                f"kwargs.model), e.g. under data/06_models/."
            )
        self.name = name
        self.model = str(model)
        self.resolution = None if resolution is None else int(resolution)
        self.square = bool(square)
        self.pad_multiple = int(pad_multiple)
        self.image_range = image_range
        self.mask_means = mask_means
        self.noise_dim = int(noise_dim)
        self.uses_seed = self.noise_dim > 0
        self.device = device
        self.dtype = dtype

    def load(self) -> Any:
        return load_torchscript(self.model, self.device, self.dtype)

    def _run_size(self, height: int, width: int) -> tuple[int, int]:
        if self.resolution is None:
            return height, width
        if self.square:
            return self.resolution, self.resolution
        scale = self.resolution / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        import torch

        module = self.load()
        height, width = image.shape[:2]
        run_h, run_w = self._run_size(height, width)
        run_image, run_mask = image, mask
        if (run_h, run_w) != (height, width):
            run_image = cv2.resize(image, (run_w, run_h), interpolation=_interpolation(height * width, run_h * run_w))
            run_mask = cv2.resize(mask.astype(np.float32), (run_w, run_h), interpolation=cv2.INTER_AREA) > 0
        pad_h = -run_h % self.pad_multiple
        pad_w = -run_w % self.pad_multiple
        pixels = np.pad(run_image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(run_h, run_w) > 1 else "edge")
        holes = np.pad(run_mask, ((0, pad_h), (0, pad_w)), mode="constant")
        dtype = getattr(torch, self.dtype)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255.0
        if self.image_range == "-1_1":
            x = x * 2.0 - 1.0
        m = torch.from_numpy(holes.astype(np.float32))[None, None]
        if self.mask_means == "keep":
            m = 1.0 - m
        inputs = [x.to(self.device, dtype), m.to(self.device, dtype)]
        if self.noise_dim:
            generator = torch.Generator("cpu").manual_seed(int(seed))
            inputs.append(torch.randn((1, self.noise_dim), generator=generator).to(self.device, dtype))
        with torch.inference_mode():
            out = module(*inputs)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = out.float()[0].permute(1, 2, 0).cpu().numpy()[:run_h, :run_w]
        if self.image_range == "-1_1":
            out = (out + 1.0) / 2.0
        result = (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if (run_h, run_w) != (height, width):
            result = cv2.resize(result, (width, height), interpolation=_interpolation(run_h * run_w, height * width))
        return result

    def describe(self) -> dict[str, Any]:
        return {"registry": self.name, "model": self.model, "format": "torchscript", "resolution": self.resolution}

    def __repr__(self) -> str:
        return f"TorchScriptInpaintGenerator(name={self.name!r}, model={self.model!r})"


@GENERATORS.register("lama", description="LaMa from a local TorchScript file (big-lama.pt contract); no prompt",
                     pipeline="torch.jit", supported=True)
def build_lama(model: str, resolution: int | None = None, pad_multiple: int = 8, device: str = "cpu",
               dtype: str = "float32") -> TorchScriptInpaintGenerator:
    """LaMa (Suvorov et al., 2022) from TorchScript: image [0, 1], mask 1 = hole, any size (padded to 8)."""
    return TorchScriptInpaintGenerator(model, resolution=resolution, pad_multiple=pad_multiple, image_range="0_1",
                                       mask_means="hole", noise_dim=0, device=device, dtype=dtype, name="lama",
                                       expected="big-lama.pt (LaMa exported to TorchScript, as lama-cleaner ships it)")


@GENERATORS.register("mat", description="MAT from a local TorchScript file (512 px, image [-1, 1], mask 1 = keep, z)",
                     pipeline="torch.jit", supported=True)
def build_mat(model: str, resolution: int = 512, noise_dim: int = 512, device: str = "cpu",
              dtype: str = "float32") -> TorchScriptInpaintGenerator:
    """MAT (Li et al., 2022) from TorchScript: square ``resolution`` input, image [-1, 1], mask 1 = keep,
    style noise z of ``noise_dim`` from the seed (0 = an export without z)."""
    return TorchScriptInpaintGenerator(model, resolution=resolution, square=True, pad_multiple=1, image_range="-1_1",
                                       mask_means="keep", noise_dim=noise_dim, device=device, dtype=dtype, name="mat",
                                       expected="a MAT generator exported to TorchScript with forward(image, mask[, z])")
