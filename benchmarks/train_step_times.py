"""Seconds per training step of every detector registry entry, at realistic sizes, random init.

One step = forward + the model's own loss + backward + AdamW update on a batch of random images
with a random edited rectangle (the trainer's ``_Objective``), exactly what
``models.detectors.training.train_detector`` does per step without data loading.

    PYTHONPATH=src .venv/bin/python benchmarks/train_step_times.py               # CPU, 256 px, batch 4
    PYTHONPATH=src .venv/bin/python benchmarks/train_step_times.py --device cuda --size 512 --amp bf16
    PYTHONPATH=src .venv/bin/python benchmarks/train_step_times.py --models segformer fcn8s --steps 5

Prints a table (and JSON with ``--out``). Numbers on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from models.detectors import create_detector, list_detectors
from models.detectors.training import _Objective, targets_for_task

# The seeds' configurations (random init: no weights can be downloaded here).
CONFIGS = {
    "deeplabv3plus": {"encoder_name": "resnet50", "encoder_output_stride": 16},
    "segformer": {"encoder_name": "mit_b0"},
    "fcn8s": {"backbone": "vgg16"},
    "nfa_vit": {},
    "maskclip": {"random_init": True},  # a random FROZEN CLIP must be asked for
    "cnnspot": {"backbone": "resnet50"},
    "universal_fake_det": {"random_init": True},
}


def batch(size: int, batch_size: int, num_classes: int, task: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, 3, size, size), dtype=np.uint8)
    labels = np.zeros((batch_size, size, size), dtype=np.uint8)
    for i in range(batch_size // 2, batch_size):  # half the batch edited
        top, left = rng.integers(0, size // 2, 2)
        labels[i, top:top + size // 3, left:left + size // 3] = rng.integers(1, num_classes)
    target = torch.from_numpy(targets_for_task(labels, task))
    image_label = torch.tensor([int(labels[i].max()) for i in range(batch_size)])
    return torch.from_numpy(images).float() / 255.0, target, image_label


def time_entry(name: str, size: int, batch_size: int, steps: int, warmup: int, device: str, amp: str, task: str) -> dict:
    num_classes = 2 if task == "binary" else 4
    started = time.perf_counter()
    model = create_detector(name, num_classes=num_classes, **CONFIGS.get(name, {})).to(device).train()
    build_s = time.perf_counter() - started
    objective = _Objective(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    x, y, labels = (t.to(device) for t in batch(size, batch_size, num_classes, task))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    times = []
    for step in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext():
            loss, _ = objective(x, y, labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    per_step = float(np.median(times))
    return {
        "model": name, "config": CONFIGS.get(name, {}), "task": task, "size": size, "batch_size": batch_size,
        "params_total_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "params_trainable_m": sum(p.numel() for p in params) / 1e6,
        "build_s": build_s, "seconds_per_step": per_step, "seconds_per_step_min": float(min(times)),
        "images_per_second": batch_size / per_step, "steps_timed": steps, "loss": float(loss.detach()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Our entries by default; IMDL-BenCo's (imdl:*) on request (MVSS-Net needs torch.hub's ResNet-50).
    parser.add_argument("--models", nargs="*", default=[n for n in list_detectors() if not n.startswith("imdl:")])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--task", default="binary", choices=["binary", "semantic"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the random-init warnings are expected here
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        row = time_entry(name, args.size, args.batch_size, args.steps, args.warmup, args.device, args.amp, args.task)
        rows.append(row)
        print(f"{name:20s} {row['seconds_per_step']:8.2f} s/step  {row['images_per_second']:7.2f} img/s  "
              f"{row['params_trainable_m']:7.1f}M trainable / {row['params_total_m']:7.1f}M  (build {row['build_s']:.1f} s)",
              flush=True)
    if not args.out:
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
            "machine": platform.processor() or platform.machine(), "amp": args.amp}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
