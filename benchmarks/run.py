"""`make bench`: where the time goes in EditLens' stages, measured side by side in one run.

Prints seconds per item and ratios against a reference measured in the same process, so the
numbers are comparable even though absolute times vary between runs on shared machines.
Results are also written to benchmarks/results.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.detectors import create_detector  # noqa: E402
from models.detectors.training import TrainConfig, train_detector  # noqa: E402
from models.generators import create_generator  # noqa: E402
from models.metrics import BoundaryF1, ConfusionMatrix  # noqa: E402
from models.quality import create_quality_scorer  # noqa: E402

SIZE = 256


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up (model loading, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    image = cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[64:160, 80:176] = True  # 14% of the image, a typical object
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        specs = {"telea": {}, "navier_stokes": {}, "tiny-sd": {"model": str(Path(tmp) / "tiny-sd"), "steps": 4}}
        for name, kwargs in specs.items():
            generator = create_generator(name, **kwargs)
            results[f"generator/{name} s/image"] = best_of(lambda g=generator: g.inpaint(image, mask, "a red car", 0))
    brisque = create_quality_scorer("brisque")
    results["quality/brisque s/image"] = best_of(lambda: brisque.score(image))

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(50, SIZE, SIZE))
    preds = np.where(rng.random(labels.shape) < 0.8, labels, rng.integers(0, 4, size=labels.shape))

    def metrics():
        cm, bf = ConfusionMatrix(4), BoundaryF1(4, tolerance_px=2)
        for p, t in zip(preds, labels):
            cm.update(p, t)
            bf.update(p, t)
        cm.mean_iou(), bf.mean()

    results["metrics/confusion+bF1 s/image"] = best_of(metrics, repeats=1) / len(labels)

    samples = [(image, mask.astype(np.uint8))] * 8
    for name, kwargs in {"deeplabv3plus": {"encoder_name": "resnet18"}, "segformer": {}}.items():
        model = create_detector(name, num_classes=2, **kwargs)
        cfg = TrainConfig(task="binary", steps=3, batch_size=4, warmup_steps=1)
        history = train_detector(model, samples, cfg, progress=False)
        results[f"train/{name} s/step (batch 4)"] = history["seconds"] / history["steps"]

    reference = results["generator/telea s/image"]
    width = max(map(len, results))
    print(f"{'measurement':<{width}}  {'seconds':>9}  {'x telea':>8}")
    for key, value in results.items():
        print(f"{key:<{width}}  {value:9.4f}  {value / reference:8.1f}")
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps({"image_size": SIZE, "cpu_threads": torch.get_num_threads(), **results}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
