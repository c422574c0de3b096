"""GLIDE parity: our ``glide-inpaint`` components against OpenAI's own code, on the same weights.

    python benchmarks/glide_parity.py <clone of github.com/openai/glide-text2im>

Needs the clone's package importable (torch, numpy, regex; nothing downloaded). Builds OpenAI's
base-inpaint and upsample-inpaint models at reduced width (their defaults otherwise), fills every
parameter with random values (their init zeroes the output convolutions, which would hide
errors), loads the same state dict into ``GlideUNet`` with ``strict=True`` and prints the largest
difference of: the forward pass (float32, and float16 after both sides' fp16 conversion), the
respaced schedules ("100", "fast27"), one reverse step at every respaced index with the
notebook's ``denoised_fn`` (known pixels re-imposed on x_0), the tokenizer on a few prompts
(our ``GlideTokenizer`` reading the clone's vocabulary files), and the whole two-stage
inpainting: ``glide-inpaint`` on a 256 px image against the steps of OpenAI's
``notebooks/inpaint.ipynb`` run with their ``p_sample_loop`` on the same inputs and the same noise
(each side's random draws replaced by one shared sequence). Exits 1 if a difference exceeds its
tolerance. Runs on CPU in a few minutes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

SMALL = {"num_channels": 64, "xf_width": 64, "xf_layers": 2, "xf_heads": 2, "text_ctx": 16}
OURS_SMALL = {"model_channels": 64, "xf_width": 64, "xf_layers": 2, "xf_heads": 2, "text_ctx": 16}
PROMPTS = ["a corgi in a field", "A Red CAT sitting on the sofa, 3 dogs!", "naïve café résumé",
           "two  spaces\nnewline"]


def _official(kind: str, respacing: str, fp16: bool):
    from glide_text2im.model_creation import (
        create_model_and_diffusion,
        model_and_diffusion_defaults,
        model_and_diffusion_defaults_upsampler,
    )

    options = model_and_diffusion_defaults() if kind == "base" else model_and_diffusion_defaults_upsampler()
    options.update(SMALL, inpaint=True, use_fp16=fp16, timestep_respacing=respacing)
    model, diffusion = create_model_and_diffusion(**options)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.05, generator=torch.Generator().manual_seed(parameter.numel()))
    return model.eval(), diffusion


def _forward_difference(kind: str, fp16: bool) -> float:
    from models.generators.glide_model import GlideUNet, base_inpaint_config, upsample_inpaint_config

    reference, _ = _official(kind, "", fp16)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    config = (base_inpaint_config() if kind == "base" else upsample_inpaint_config()).with_overrides(OURS_SMALL)
    ours = GlideUNet(config)
    ours.load_state_dict(state, strict=True)
    ours.eval()
    if fp16:
        reference.convert_to_fp16()
        ours.to_fp16()
    size = 64 if kind == "base" else 256
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=generator)
    image = torch.randn(2, 3, size, size, generator=generator).clamp(-1, 1)
    keep = (torch.rand(2, 1, size, size, generator=generator) > 0.5).float()
    low_res = torch.randn(2, 3, 64, 64, generator=generator) if kind == "upsample" else None
    tokens = torch.randint(0, 50000, (2, 16), generator=generator)
    mask = torch.arange(16)[None] < torch.tensor([[5], [9]])
    extra = {"low_res": low_res} if low_res is not None else {}
    with torch.no_grad():
        expected = reference(x, torch.tensor([10, 700]), tokens=tokens, mask=mask, inpaint_image=image,
                             inpaint_mask=keep, **extra)
        got = ours(x, torch.tensor([10, 700]), ours.encode_text(tokens, mask), image, keep, low_res)
    return float((expected.float() - got.float()).abs().max())


def _step_difference(kind: str, respacing: str) -> float:
    from models.generators.glide import GlideDiffusion

    _, diffusion = _official(kind, respacing, False)
    ours = GlideDiffusion("squaredcos_cap_v2" if kind == "base" else "linear", respacing)
    if ours.timesteps != list(diffusion.timestep_map) or not np.allclose(ours.betas, diffusion.betas, rtol=1e-12):
        return float("inf")
    generator = torch.Generator().manual_seed(2)
    worst = 0.0
    for i in range(len(ours)):
        eps, x, noise = (torch.randn(2, 3, 8, 8, generator=generator) for _ in range(3))
        var_values = torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1
        known = torch.randn(2, 3, 8, 8, generator=generator).clamp(-1, 1)
        keep = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()
        out = diffusion.p_mean_variance(lambda *_, **__: torch.cat([eps, var_values], 1), x, torch.tensor([i, i]),
                                        clip_denoised=True, denoised_fn=lambda x0: x0 * (1 - keep) + known * keep)
        expected = out["mean"] + (1.0 if i else 0.0) * torch.exp(0.5 * out["log_variance"]) * noise
        got = ours.step(i, x, eps, var_values, known, keep, noise if i else None)
        worst = max(worst, float((expected - got).abs().max()))
    return worst


def _save_official_pair(folder: Path) -> dict:
    kwargs = {}
    for kind in ("base", "upsample"):
        model, _ = _official(kind, "", False)
        torch.save(model.state_dict(), folder / f"{kind}.pt")
        kwargs[f"{kind}_model"] = str(folder / f"{kind}.pt")
        kwargs[f"{kind}_config"] = OURS_SMALL
    return kwargs


class _SharedNoise:
    """One noise sequence handed out to both implementations: ours asks for (1, 3, H, W) tensors,
    OpenAI's sampler for the whole (conditional + unconditional) batch, whose second half it
    discards; it gets the same tensor padded with zeros."""

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.drawn: list[torch.Tensor] = []
        self.position = 0

    def rewind(self) -> None:
        self.position = 0

    def next(self, shape: tuple[int, ...]) -> torch.Tensor:
        if self.position == len(self.drawn):
            self.drawn.append(torch.randn((1, *shape[1:]), generator=self.generator))
        tensor = self.drawn[self.position]
        self.position += 1
        return torch.cat([tensor, torch.zeros((shape[0] - 1, *shape[1:]))])


def _official_inpaint(clone_models: dict, image: np.ndarray, hole: np.ndarray, prompt: str, noise: _SharedNoise,
                      respacings: tuple[str, str]) -> np.ndarray:
    """The notebook's two stages (its cells, as calls to OpenAI's package) on the same inputs."""
    import cv2
    from unittest import mock

    (base, base_diffusion), (up, up_diffusion) = clone_models["base"], clone_models["upsample"]
    tokenizer = base.tokenizer

    def to_tensor(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1

    image_64 = to_tensor(cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA))
    keep_64 = torch.from_numpy(~(cv2.resize(hole.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA) > 0))
    keep_64 = keep_64.float()[None, None]
    keep_256 = torch.nn.functional.interpolate(keep_64, (256, 256), mode="nearest")
    image_256 = to_tensor(image)
    tokens, mask = tokenizer.padded_tokens_and_mask(tokenizer.encode(prompt), 16)
    empty, empty_mask = tokenizer.padded_tokens_and_mask([], 16)
    kwargs = {"tokens": torch.tensor([tokens, empty]), "mask": torch.tensor([mask, empty_mask]),
              "inpaint_image": (image_64 * keep_64).repeat(2, 1, 1, 1), "inpaint_mask": keep_64.repeat(2, 1, 1, 1)}

    def guided(x_t, ts, **model_kwargs):
        half = x_t[: len(x_t) // 2]
        out = base(torch.cat([half, half]), ts, **model_kwargs)
        eps, rest = out[:, :3], out[:, 3:]
        cond, uncond = eps.chunk(2)
        eps = uncond + 5.0 * (cond - uncond)
        return torch.cat([torch.cat([eps, eps]), rest], dim=1)

    def known(model_kwargs):
        keep, image = model_kwargs["inpaint_mask"], model_kwargs["inpaint_image"]
        return lambda x0: x0 * (1 - keep) + image * keep

    # OpenAI's p_sample draws noise at the last step too and multiplies it by 0; ours draws none.
    last_steps = {base_diffusion.num_timesteps, base_diffusion.num_timesteps + up_diffusion.num_timesteps}
    calls = []

    def randn_like(x, **_):
        calls.append(1)
        return torch.zeros_like(x) if len(calls) in last_steps else noise.next(tuple(x.shape))

    noise.rewind()
    with mock.patch.object(torch, "randn", lambda *shape, **_: noise.next(shape)), \
            mock.patch.object(torch, "randn_like", randn_like):
        low = base_diffusion.p_sample_loop(guided, (2, 3, 64, 64), device="cpu", clip_denoised=True,
                                           model_kwargs=kwargs, denoised_fn=known(kwargs))[:1]
        up_kwargs = {"low_res": ((low + 1) * 127.5).round() / 127.5 - 1, "tokens": torch.tensor([tokens]),
                     "mask": torch.tensor([mask]), "inpaint_image": image_256 * keep_256, "inpaint_mask": keep_256}
        start = noise.next((1, 3, 256, 256)) * 0.997
        result = up_diffusion.p_sample_loop(up, (1, 3, 256, 256), noise=start, device="cpu", clip_denoised=True,
                                            model_kwargs=up_kwargs, denoised_fn=known(up_kwargs))
    return ((result[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _pipeline_difference(clone: Path) -> float:
    import tempfile
    from unittest import mock

    from models.generators import create_generator
    from models.generators.glide import GlideInpaintGenerator

    respacings = ("10", "fast27")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    hole = np.zeros((256, 256), bool)
    hole[60:150, 90:200] = True
    noise = _SharedNoise(3)
    with tempfile.TemporaryDirectory() as folder:
        kwargs = _save_official_pair(Path(folder))
        ours = create_generator("glide-inpaint", **kwargs, tokenizer=str(clone / "glide_text2im" / "tokenizer"),
                                size=256, base_respacing=respacings[0], upsample_respacing=respacings[1])
        with mock.patch.object(GlideInpaintGenerator, "_noise", lambda self, gens, shape: noise.next((1, *shape))):
            got = ours.inpaint(image, hole, "a corgi in a field", seed=0)
        models = {}
        for kind, respacing in zip(("base", "upsample"), respacings):
            model, diffusion = _official(kind, respacing, False)
            model.load_state_dict(torch.load(kwargs[f"{kind}_model"], weights_only=True))
            models[kind] = (model.eval(), diffusion)
        expected = _official_inpaint(models, image, hole, "a corgi in a field", noise, respacings)
    expected = np.where(hole[..., None], expected, image)  # ours pastes the original outside the hole
    difference = np.abs(expected.astype(int) - got.astype(int))
    print(f"     two-stage inpaint: {np.mean(difference > 0):.4%} of values differ, mean |difference| "
          f"{difference.mean():.3g} (uint8); the hole holds {len(np.unique(got[hole]))} distinct values, "
          f"{np.mean(got[hole] != image[hole]):.1%} changed, std {got[hole].std():.1f}")
    return float(difference.max())


def main(clone: Path) -> int:
    sys.path.insert(0, str(clone))
    from glide_text2im.tokenizer.bpe import get_encoder

    from models.generators.glide import GlideTokenizer

    torch.set_num_threads(1)
    checks = []
    for kind in ("base", "upsample"):
        checks.append((f"{kind} forward float32", _forward_difference(kind, False), 1e-5))
        checks.append((f"{kind} forward float16", _forward_difference(kind, True), 1e-3))
    checks.append(("base steps, respacing 100", _step_difference("base", "100"), 1e-5))
    checks.append(("upsample steps, respacing fast27", _step_difference("upsample", "fast27"), 1e-5))
    encoder, ours = get_encoder(), GlideTokenizer(clone / "glide_text2im" / "tokenizer")
    mismatched = sum(encoder.padded_tokens_and_mask(encoder.encode(p), 128) != ours.padded(p, 128) for p in PROMPTS)
    checks.append((f"tokenizer, {len(PROMPTS)} prompts (mismatches)", float(mismatched), 0.0))
    checks.append(("two-stage inpaint at 256 px, 10 + fast27 steps (uint8)", _pipeline_difference(clone), 2.0))
    failed = 0
    for name, difference, tolerance in checks:
        ok = difference <= tolerance
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: max |difference| {difference:.3g} (tolerance {tolerance:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))
