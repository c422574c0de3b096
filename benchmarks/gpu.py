"""GPU benchmarks (run when CUDA is present; otherwise reported as skipped).

- Generation: one real-size Stable Diffusion inpainting architecture (the SD 1.5 / SD2 UNet
  config, randomly initialised: no download), 1024 px, fp16: images/s unbatched (batch 1) vs
  batched (batch 4), a few denoising steps (the per-step cost is what scales).
- Training: DeepLabV3+ ResNet-50 at 512 px with AMP (bf16 or fp16), images/s of the project's
  ``train_detector``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch


def _sync() -> None:
    torch.cuda.synchronize()


def generation(size: int = 1024, steps: int = 4, batch: int = 4) -> dict[str, Any]:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(  # SD 1.5 / 2 inpainting UNet (9 input channels), random weights
        sample_size=size // 8, in_channels=9, out_channels=4, cross_attention_dim=1024,
        attention_head_dim=[5, 10, 20, 20], use_linear_projection=True,
        block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
    ).to("cuda", torch.float16).eval()
    latent = size // 8

    def run(n: int) -> float:
        x = torch.randn(2 * n, 9, latent, latent, device="cuda", dtype=torch.float16)  # x2: classifier-free guidance
        text = torch.randn(2 * n, 77, 1024, device="cuda", dtype=torch.float16)
        with torch.inference_mode():
            unet(x, 10, encoder_hidden_states=text)  # warm-up
            _sync()
            start = time.perf_counter()
            for t in range(steps):
                unet(x, 999 - t, encoder_hidden_states=text)
            _sync()
        return n / ((time.perf_counter() - start) / steps)

    one, many = run(1), run(batch)
    return {"size": size, "dtype": "float16", "unet_steps_timed": steps,
            "unbatched_img_per_s_per_step": one, f"batch{batch}_img_per_s_per_step": many, "batched_speedup": many / one,
            "note": "images/s per denoising step; divide by the step count (e.g. 30) for images/s per image"}


def training(size: int = 512, batch: int = 8, steps: int = 20) -> dict[str, Any]:
    from models.detectors import create_detector
    from models.detectors.training import TrainConfig, train_detector

    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (rng.random((size, size)) < 0.2).astype(np.uint8))
               for _ in range(batch * 2)]
    model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet50").to("cuda")
    cfg = TrainConfig(task="binary", steps=steps, batch_size=batch, warmup_steps=1, amp="auto", device="cuda",
                      log_every=0, distributed="off")
    history = train_detector(model, samples, cfg, progress=False)
    return {"size": size, "batch": batch, "amp": str(history.get("amp")), "images_per_second": history["images_per_second"]}


def run() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA"}
    out = {"device": torch.cuda.get_device_name(0)}
    for name, fn in (("generation", generation), ("training", training)):
        try:
            out[name] = fn()
        except Exception as exc:  # report, keep the CPU results
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
