"""GLIDE inpainting (Nichol et al., 2021) from OpenAI's published checkpoints, run by our code.

DiffSeg30k edits with GLIDE at 256 px (DiffSeg30k section 4.1). GLIDE has no diffusers
pipeline, so this module runs it itself: ``glide_model.GlideUNet`` (the networks, with the
checkpoints' parameter names), the BPE tokenizer, the Gaussian diffusion with learned variances
and the two-stage inpainting of OpenAI's ``notebooks/inpaint.ipynb`` (github.com/openai/glide-text2im;
read, not copied):

1. ``base_inpaint.pt`` at 64 px: cosine ("squaredcos_cap_v2") schedule of 1000 steps respaced
   to 100, classifier-free guidance (scale 5.0) against the empty prompt (GLIDE section 2.4).
2. ``upsample_inpaint.pt`` 64 -> 256 px: linear schedule respaced to "fast27", no guidance,
   initial noise scaled by 0.997 (the notebook's ``upsample_temp``), conditioned on the 64 px
   sample quantised to 8 bits.

At every step of both stages the known pixels are re-imposed on the model's x_0 prediction
before the posterior mean is formed (the notebook's ``denoised_fn``), and x_0 is clipped to
[-1, 1]. The mask is decided at 64 px (a 64 px cell is repainted if any pixel in it is) and
upsampled by nearest neighbour for stage 2, as the notebook does; the repainted region is thus a
superset of the requested one, and ``InpaintGenerator.inpaint`` pastes the original back
outside the requested mask.

Files (local paths, never downloaded): the two ``.pt`` state dicts and the tokenizer's
``encoder.json.gz`` + ``vocab.bpe.gz`` (GPT-2's byte-level BPE, 50257 tokens; the folder
``glide_text2im/tokenizer`` of a clone of openai/glide-text2im; ``encoder.json``/``vocab.json`` +
``vocab.bpe``/``merges.txt`` uncompressed also work). Text is lower-cased before encoding, as
OpenAI's encoder does.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..cache import process_cache
from .base import GENERATORS, InpaintGenerator
from .diffusion import _interpolation
from .glide_model import GlideConfig, base_inpaint_config, upsample_inpaint_config

TOKENIZER_FILES = (("encoder.json.gz", "encoder.json", "vocab.json"), ("vocab.bpe.gz", "vocab.bpe", "merges.txt"))


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


class GlideTokenizer:
    """GPT-2's byte-level BPE over lower-cased text, as GLIDE's ``tokenizer/bpe.py`` encodes it.

    Args:
        folder: a folder holding the vocabulary (``encoder.json[.gz]`` or ``vocab.json``) and the
            merges (``vocab.bpe[.gz]`` or ``merges.txt``; first line a ``#version`` header).

    Raises:
        FileNotFoundError: the folder or one of the two files is missing (the message names them).
        ValueError: a file cannot be parsed.
    """

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer, decoders, pre_tokenizers
        from tokenizers.models import BPE

        folder = Path(folder)
        found = []
        for names in TOKENIZER_FILES:
            path = next((folder / n for n in names if (folder / n).is_file()), None)
            if path is None:
                raise FileNotFoundError(f"GLIDE tokenizer folder {folder} has none of {list(names)}; expected the "
                                        "glide_text2im/tokenizer folder of openai/glide-text2im (GPT-2's BPE files)")
            found.append(path)
        try:
            vocab = json.loads(_read_text(found[0]))
            lines = _read_text(found[1]).split("\n")
            merges = [tuple(line.split()) for line in lines[1:] if line.strip()]
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read GLIDE tokenizer files {found}: {error}") from error
        if any(len(m) != 2 for m in merges):
            raise ValueError(f"{found[1]}: every merge line must hold two symbols")
        self.folder = str(folder)
        self.n_vocab = len(vocab)
        self.end_token = self.n_vocab - 1  # GLIDE pads with the last id (GPT-2's <|endoftext|>)
        # GPT-2's split pattern and byte-to-unicode map are those of the ByteLevel pre-tokenizer.
        self._bpe = Tokenizer(BPE(vocab=vocab, merges=merges))
        self._bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self._bpe.decoder = decoders.ByteLevel()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` lower-cased (no start or end token)."""
        return self._bpe.encode(text.lower(), add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._bpe.decode(ids)

    def padded(self, text: str, text_ctx: int) -> tuple[list[int], list[bool]]:
        """(tokens, mask) of length ``text_ctx``: the first ``text_ctx`` ids, then ``end_token``
        padding; mask True on real tokens. The empty string gives GLIDE's unconditional input."""
        ids = self.encode(text)[:text_ctx] if text else []
        pad = text_ctx - len(ids)
        return ids + [self.end_token] * pad, [True] * len(ids) + [False] * pad


def beta_schedule(name: str, steps: int = 1000) -> np.ndarray:
    """(steps,) float64 betas: "linear" (Ho et al., scaled to ``steps``) or "squaredcos_cap_v2"
    (Nichol & Dhariwal's cosine schedule, betas capped at 0.999). Raises ValueError otherwise."""
    if name == "linear":
        scale = 1000 / steps
        return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
    if name == "squaredcos_cap_v2":
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)])
    raise ValueError(f"unknown noise schedule {name!r}; known: linear, squaredcos_cap_v2")


def respaced_timesteps(steps: int, spacing: str) -> list[int]:
    """Sorted timesteps of the ``steps``-step process kept by ``spacing``: "N" or "a,b,c" (N steps
    evenly over the process, or a per equal section), "ddimN" (an integer stride giving N steps),
    or "fast27" ("10,10,3,2,2" with step ``steps-1`` swapped for ``steps-3``; OpenAI's respace.py).

    Raises ValueError for a section too short for its count or an impossible "ddimN"."""
    spacing = str(spacing).strip()
    if spacing == "fast27":
        kept = set(respaced_timesteps(steps, "10,10,3,2,2"))
        kept.discard(steps - 1)  # the noisiest step gives DDIM-like artefacts (OpenAI's comment)
        kept.add(steps - 3)
        return sorted(kept)
    if spacing.startswith("ddim"):
        count = int(spacing[4:])
        for stride in range(1, steps):
            if len(range(0, steps, stride)) == count:
                return list(range(0, steps, stride))
        raise ValueError(f"cannot take exactly {count} steps of {steps} with an integer stride")
    counts = [int(c) for c in spacing.split(",")]
    size, extra = divmod(steps, len(counts))
    kept, start = [], 0
    for index, count in enumerate(counts):
        section = size + (1 if index < extra else 0)
        if section < count:
            raise ValueError(f"cannot take {count} steps from a section of {section}")
        stride = 1 if count <= 1 else (section - 1) / (count - 1)
        kept += [start + round(stride * j) for j in range(count)]
        start += section
    return sorted(set(kept))


class GlideDiffusion:
    """The Gaussian diffusion GLIDE samples with: a schedule respaced to ``spacing``, epsilon
    prediction and learned variances interpolated (in log space) between the posterior variance
    and beta (Nichol & Dhariwal, 2021, eq. 15).

    ``timesteps[i]`` is the original-process timestep the model is told at respaced step i.
    """

    def __init__(self, schedule: str, spacing: str, steps: int = 1000):
        alphas_cumprod = np.cumprod(1.0 - beta_schedule(schedule, steps))
        self.timesteps = respaced_timesteps(steps, spacing)
        if len(self.timesteps) < 2:
            # the learned variance's lower bound at step 0 is taken from step 1
            raise ValueError(f"respacing {spacing!r} keeps {len(self.timesteps)} step; GLIDE needs at least 2")
        kept = alphas_cumprod[self.timesteps]
        betas = 1.0 - kept / np.append(1.0, kept[:-1])
        prev = np.append(1.0, kept[:-1])
        posterior_variance = betas * (1.0 - prev) / (1.0 - kept)
        self.betas = betas
        self.coefficients = {  # float64 here; cast to float32 per step like OpenAI's code
            "recip": np.sqrt(1.0 / kept),
            "recipm1": np.sqrt(1.0 / kept - 1.0),
            "mean_x0": betas * np.sqrt(prev) / (1.0 - kept),
            "mean_xt": (1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - kept),
            # the posterior variance is 0 at the first step: its log is clipped to the next one
            "min_log": np.log(np.append(posterior_variance[1], posterior_variance[1:])),
            "max_log": np.log(betas),
        }

    def __len__(self) -> int:
        return len(self.timesteps)

    def step(self, i: int, x: Any, eps: Any, var_values: Any, known: Any, keep: Any, noise: Any) -> Any:
        """One reverse step x_i -> x_{i-1} at respaced index ``i``.

        x, eps, var_values, noise: (N, 3, H, W) float32; known: (N, 3, H, W) the known image in
        [-1, 1]; keep: (N, 1, H, W), 1 = known pixel. The x_0 prediction takes the known pixels
        before clipping (OpenAI's inpainting ``denoised_fn``). No noise is added at i == 0.
        """
        c = {k: float(v[i]) for k, v in self.coefficients.items()}
        x0 = c["recip"] * x - c["recipm1"] * eps
        x0 = (x0 * (1 - keep) + known * keep).clamp(-1, 1)
        mean = c["mean_x0"] * x0 + c["mean_xt"] * x
        if i == 0:
            return mean
        frac = (var_values + 1) / 2
        log_variance = frac * c["max_log"] + (1 - frac) * c["min_log"]
        return mean + (0.5 * log_variance).exp() * noise


def load_glide_unet(path: str | Path, config: GlideConfig, device: str = "cpu", dtype: str = "float32") -> Any:
    """The ``GlideUNet`` of ``config`` with the state dict in ``path`` (``torch.save`` of a
    ``state_dict``, as OpenAI publishes them), loaded with ``strict=True``, eval mode, once per
    process. ``dtype`` "float16" converts as OpenAI's ``convert_to_fp16`` (for GPUs).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a state dict, or its keys / shapes do not match ``config``
            (the message names the file and the first differences).
    """
    import torch

    from .glide_model import GlideUNet

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GLIDE checkpoint {path} does not exist (expected OpenAI's base_inpaint.pt / "
                                "upsample_inpaint.pt, downloaded beforehand)")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"GLIDE runs in float32 or float16 (OpenAI's fp16 mode), got {dtype!r}")

    def build() -> Any:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - torch raises several types for a bad file
            raise ValueError(f"{path}: not a torch checkpoint ({error})") from error
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
        model = GlideUNet(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{path} does not match the GLIDE config {config}: {str(error)[:600]}") from error
        model.eval().to(device)
        return model.to_fp16() if dtype == "float16" else model

    return process_cache().get(("glide", str(path.resolve()), repr(config), str(device), dtype), build)


class GlideInpaintGenerator(InpaintGenerator):
    """GLIDE (filtered) inpainting, 64 px base then 64 -> 256 px upsampler (module docstring).

    Args:
        base_model: path of ``base_inpaint.pt``; upsample_model: path of ``upsample_inpaint.pt``.
        tokenizer: folder of the BPE files (see ``GlideTokenizer``).
        size: side of the square the image is resized to for the upsampler (the output size of
            GLIDE, 256); the base runs at ``size // 4``. Must be a multiple of 4 whose quarter is
            divisible by the base UNet's downsampling (8 for the published model).
        guidance_scale: classifier-free guidance of the base stage (the notebook's 5.0).
        base_respacing, upsample_respacing: step spacings (the notebook's "100" and "fast27").
        upsample_temp: scale of the upsampler's initial noise (0.997).
        base_config, upsample_config: overrides of the published configs (tiny test models).
        device, dtype: "float32" or "float16" (OpenAI's fp16 mode, GPU only).

    The image is resized to a square whatever its aspect ratio (DiffSeg30k's crops are square);
    the 256 px result is resized back. Each seed's noise comes from its own generator, so an
    output does not depend on the other seeds of the batch.

    Raises:
        FileNotFoundError: a checkpoint or the tokenizer folder is missing.
        ValueError: bad option values, or a tokenizer whose vocabulary size differs from the model's.
    """

    name = "glide-inpaint"

    def __init__(self, base_model: str, upsample_model: str, tokenizer: str, size: int = 256,
                 guidance_scale: float = 5.0, base_respacing: str = "100", upsample_respacing: str = "fast27",
                 upsample_temp: float = 0.997, base_config: dict | None = None, upsample_config: dict | None = None,
                 device: str = "cpu", dtype: str = "float32"):
        for what, path in (("base_model", base_model), ("upsample_model", upsample_model)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"glide-inpaint: {what} {path!r} does not exist; expected OpenAI's "
                                        f"{'base_inpaint.pt' if what == 'base_model' else 'upsample_inpaint.pt'}")
        if int(size) % 4 or int(size) < 4:
            raise ValueError(f"size must be a positive multiple of 4 (base at size // 4), got {size}")
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
        if not 0 < float(upsample_temp) <= 1.5:
            raise ValueError(f"upsample_temp must be in (0, 1.5], got {upsample_temp}")
        self.base_model, self.upsample_model = str(base_model), str(upsample_model)
        self.base_config = base_inpaint_config().with_overrides(base_config)
        self.upsample_config = upsample_inpaint_config().with_overrides(upsample_config)
        for cfg in (self.base_config, self.upsample_config):
            if not cfg.inpaint:
                raise ValueError("glide-inpaint needs the inpainting models (inpaint: true)")
        if self.base_config.super_res or not self.upsample_config.super_res:
            raise ValueError("base_config must be a base model and upsample_config an upsampler (super_res)")
        self.tokenizer = GlideTokenizer(tokenizer)
        for cfg in (self.base_config, self.upsample_config):
            if cfg.n_vocab != self.tokenizer.n_vocab:
                raise ValueError(f"tokenizer in {tokenizer} has {self.tokenizer.n_vocab} tokens, "
                                 f"the model {cfg.n_vocab}")
        factor = 2 ** (len(self.base_config.channel_mult) - 1)
        if (int(size) // 4) % factor or int(size) % 2 ** (len(self.upsample_config.channel_mult) - 1):
            raise ValueError(f"size {size}: size // 4 must be divisible by {factor} and size by "
                             f"{2 ** (len(self.upsample_config.channel_mult) - 1)} (the UNets' downsampling)")
        self.size = int(size)
        self.guidance_scale = float(guidance_scale)
        self.base_diffusion = GlideDiffusion("squaredcos_cap_v2", base_respacing)
        self.upsample_diffusion = GlideDiffusion("linear", upsample_respacing)
        self.base_respacing, self.upsample_respacing = str(base_respacing), str(upsample_respacing)
        self.upsample_temp = float(upsample_temp)
        self.device, self.dtype = device, dtype

    def load(self) -> tuple[Any, Any]:
        """(base UNet, upsampler UNet), loaded once per process."""
        return (load_glide_unet(self.base_model, self.base_config, self.device, self.dtype),
                load_glide_unet(self.upsample_model, self.upsample_config, self.device, self.dtype))

    def _tokens(self, prompts: list[str], ctx: int) -> tuple[Any, Any]:
        import torch

        pairs = [self.tokenizer.padded(p, ctx) for p in prompts]
        return (torch.tensor([t for t, _ in pairs], device=self.device),
                torch.tensor([m for _, m in pairs], dtype=torch.bool, device=self.device))

    def _noise(self, generators: list[Any], shape: tuple[int, ...]) -> Any:
        import torch

        return torch.cat([torch.randn((1, *shape), generator=g) for g in generators]).to(self.device)

    def _sample(self, model: Any, diffusion: GlideDiffusion, text: Any, known: Any, keep: Any, generators: list[Any],
                guided: bool, low_res: Any = None, temperature: float = 1.0) -> Any:
        import torch

        x = self._noise(generators, tuple(known.shape[1:])) * temperature
        count = x.shape[0]
        for i in reversed(range(len(diffusion))):
            t = torch.full((count * (2 if guided else 1),), diffusion.timesteps[i], device=self.device)
            if guided:  # conditional and unconditional halves of one batch (GLIDE section 2.4)
                out = model(torch.cat([x, x]), t, text, torch.cat([known, known]), torch.cat([keep, keep]))
                cond, uncond = out[:count].float(), out[count:].float()
                eps = uncond[:, :3] + self.guidance_scale * (cond[:, :3] - uncond[:, :3])
                var_values = cond[:, 3:]
            else:
                out = model(x, t, text, known, keep, low_res).float()
                eps, var_values = out[:, :3], out[:, 3:]
            noise = self._noise(generators, tuple(x.shape[1:])) if i else None
            x = diffusion.step(i, x, eps, var_values, known, keep, noise)
        return x

    def _inpaint_batch(self, image: np.ndarray, mask: np.ndarray, prompt: str, seeds: list[int]) -> list[np.ndarray]:
        import torch

        base, upsampler = self.load()
        height, width = image.shape[:2]
        small, big = self.size // 4, self.size
        image_big = cv2.resize(image, (big, big), interpolation=_interpolation(height * width, big * big))
        image_small = cv2.resize(image, (small, small), interpolation=_interpolation(height * width, small * small))
        hole_small = cv2.resize(mask.astype(np.float32), (small, small), interpolation=cv2.INTER_AREA) > 0
        keep_small = (~hole_small).astype(np.float32)
        keep_big = np.repeat(np.repeat(keep_small, 4, axis=0), 4, axis=1)  # nearest x4, as the notebook

        def tensor(a: np.ndarray, channels_last: bool) -> Any:
            t = torch.from_numpy(np.ascontiguousarray(a)).float()
            t = t.permute(2, 0, 1) if channels_last else t[None]
            return t[None].expand(len(seeds), -1, -1, -1).to(self.device)

        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.inference_mode():
            tokens, token_mask = self._tokens([prompt] * len(seeds) + [""] * len(seeds), self.base_config.text_ctx)
            text = base.encode_text(tokens, token_mask)
            known = tensor(image_small / 127.5 - 1.0, True)
            keep = tensor(keep_small, False)
            low = self._sample(base, self.base_diffusion, text, known * keep, keep, generators, guided=True)
            low = ((low + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1  # 8-bit, as the notebook hands it on
            tokens, token_mask = self._tokens([prompt] * len(seeds), self.upsample_config.text_ctx)
            text = upsampler.encode_text(tokens, token_mask)
            known = tensor(image_big / 127.5 - 1.0, True)
            keep = tensor(keep_big, False)
            up = self._sample(upsampler, self.upsample_diffusion, text, known * keep, keep, generators, guided=False,
                              low_res=low, temperature=self.upsample_temp)
            pixels = ((up + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        results = []
        for out in pixels:
            if (big, big) != (height, width):
                out = cv2.resize(out, (width, height), interpolation=_interpolation(big * big, height * width))
            results.append(out)
        return results

    def describe(self) -> dict[str, Any]:
        return {"registry": self.name, "model": self.base_model, "upsample_model": self.upsample_model,
                "size": self.size, "guidance_scale": self.guidance_scale, "base_respacing": self.base_respacing,
                "upsample_respacing": self.upsample_respacing, "upsample_temp": self.upsample_temp}

    def __repr__(self) -> str:
        return f"GlideInpaintGenerator(base_model={self.base_model!r}, upsample_model={self.upsample_model!r})"


@GENERATORS.register("glide-inpaint", pipeline="glide (own torch code)", supported=True,
                     description="GLIDE (filtered) inpainting from OpenAI's base_inpaint.pt + upsample_inpaint.pt, "
                                 "64 px with classifier-free guidance then 64 -> 256 px (DiffSeg30k's GLIDE)")
def build_glide_inpaint(base_model: str, upsample_model: str, tokenizer: str, size: int = 256,
                        guidance_scale: float = 5.0, base_respacing: str = "100", upsample_respacing: str = "fast27",
                        upsample_temp: float = 0.997, base_config: dict | None = None,
                        upsample_config: dict | None = None, device: str = "cpu",
                        dtype: str = "float32") -> GlideInpaintGenerator:
    """GLIDE inpainting from local files; see ``GlideInpaintGenerator``."""
    return GlideInpaintGenerator(base_model, upsample_model, tokenizer, size=size, guidance_scale=guidance_scale,
                                 base_respacing=base_respacing, upsample_respacing=upsample_respacing,
                                 upsample_temp=upsample_temp, base_config=base_config,
                                 upsample_config=upsample_config, device=device, dtype=dtype)
