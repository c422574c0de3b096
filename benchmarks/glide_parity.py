"""GLIDE parity: our ``glide-inpaint`` components against OpenAI's own code, on the same weights.

    python benchmarks/glide_parity.py <clone of github.com/openai/glide-text2im>

Needs the clone's package importable (torch, numpy, regex; nothing downloaded). Builds OpenAI's
base-inpaint and upsample-inpaint models at reduced width (their defaults otherwise), fills every
parameter with random values (their init zeroes the output convolutions, which would hide
errors), loads the same state dict into ``GlideUNet`` with ``strict=True`` and prints the largest
difference of: the forward pass (float32, and float16 after both sides' fp16 conversion), the
respaced schedules ("100", "fast27"), one reverse step at every respaced index with the
notebook's ``denoised_fn`` (known pixels re-imposed on x_0), and the tokenizer on a few prompts
(our ``GlideTokenizer`` reading the clone's vocabulary files). Exits 1 if a difference exceeds
its tolerance. Run on CPU in a few seconds per model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

SMALL = {"num_channels": 64, "xf_width": 64, "xf_layers": 2, "xf_heads": 2, "text_ctx": 16}
OURS_SMALL = {"model_channels": 64, "xf_width": 64, "xf_layers": 2, "xf_heads": 2, "text_ctx": 16}
PROMPTS = ["a corgi in a field", "A Red CAT sitting on the sofa, 3 dogs!", "naïve café résumé", "two  spaces\nnewline"]


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
