"""Tiny random checkpoints for ``--env diffseg30k+diffseg30k-tiny``: every model the DiffSeg30k
recipe names, built from configs by the project's tiny builders and saved where the tiny layer
points (``<root>/06_models/tiny/<name>``), so the recipe runs through the same ``from_pretrained``
code a real checkpoint takes. ``python -m tests.recipes.diffseg30k_tiny data`` builds them by hand.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from models.generators import build_tiny_sd_inpaint, tiny_zoo
from models.perception.tiny import tiny_checkpoint
from tests.models.test_generator_zoo import _tiny_lora  # kohya-format LoRA keys, Hyper-SD's layout


def build_diffseg30k_tiny(data_root: str | Path) -> dict[str, float]:
    """Build every tiny checkpoint of conf/diffseg30k-tiny under ``data_root/06_models/tiny`` (a
    folder already holding a model is kept). Returns seconds per model."""
    root = Path(data_root) / "06_models" / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    builders = {
        "sd-inpaint": lambda: build_tiny_sd_inpaint(root / "sd-inpaint"),
        "sd": lambda: tiny_zoo.build_tiny_sd(root / "sd", inpainting=False),
        "sdxl-inpaint": lambda: tiny_zoo.build_tiny_sdxl(root / "sdxl-inpaint"),
        "sdxl": lambda: tiny_zoo.build_tiny_sdxl(root / "sdxl", inpainting=False),
        "sd3": lambda: tiny_zoo.build_tiny_sd3(root / "sd3"),
        "flux-fill": lambda: tiny_zoo.build_tiny_flux(root / "flux-fill"),
        "flux": lambda: tiny_zoo.build_tiny_flux(root / "flux", fill=False),
        "glide": lambda: tiny_zoo.build_tiny_glide(root / "glide"),
        "kolors": lambda: tiny_zoo.build_tiny_kolors(root / "kolors"),
        "hunyuandit": lambda: tiny_zoo.build_tiny_hunyuandit(root / "hunyuandit"),
        "kandinsky": lambda: tiny_zoo.build_tiny_kandinsky22(root / "kandinsky"),
        "lora": lambda: _tiny_lora(root / "sdxl-inpaint", root / "hyper-sd-lora.safetensors"),
        "qwen2.5-vl": lambda: tiny_checkpoint("qwen2.5-vl", root),
        "grounding-dino": lambda: tiny_checkpoint("grounding-dino", root),
        "sam": lambda: tiny_checkpoint("sam", root),
    }
    seconds = {}
    for name, build in builders.items():
        started = time.perf_counter()
        marker = root / f".{name}.built"  # written after a complete build, so a killed build is redone
        if not marker.exists():
            build()
            marker.touch()
        seconds[name] = time.perf_counter() - started
    return seconds


if __name__ == "__main__":
    print(build_diffseg30k_tiny(sys.argv[1] if len(sys.argv) > 1 else "data"))
