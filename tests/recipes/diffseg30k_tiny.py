"""Tiny random checkpoints for ``--env diffseg30k+diffseg30k-tiny``: every model the DiffSeg30k
recipe names, built from configs by the project's tiny builders (generators:
``models.generators.tiny_zoo.TINY_BUILDERS``; perception and VLM: ``models.perception.tiny``;
detectors: ``models.detectors.tiny``) and saved where the tiny layer points
(``<root>/06_models/tiny/<name>``), so the recipe runs through the same ``from_pretrained`` code a
real checkpoint takes. ``python -m tests.recipes.diffseg30k_tiny data`` builds them by hand.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from models.generators.tiny_zoo import TinyZoo
from models.perception.tiny import tiny_checkpoint

# the generator zoo's tiny checkpoints the recipe's tiny layer names (conf/diffseg30k-tiny/globals.yml)
GENERATOR_MODELS = ("sd-inpaint", "sd", "sdxl-inpaint", "sdxl", "sd3", "flux-fill", "flux", "glide", "kolors",
                    "hunyuandit", "kandinsky", "lora")
PERCEPTION_MODELS = ("qwen2.5-vl", "grounding-dino", "sam")


def build_diffseg30k_tiny(data_root: str | Path) -> dict[str, float]:
    """Build every tiny checkpoint of conf/diffseg30k-tiny under ``data_root/06_models/tiny`` (a
    model whose build completed before is kept). Returns seconds per model."""
    root = Path(data_root) / "06_models" / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    zoo = TinyZoo(root)
    builders = {**{name: (lambda name=name: zoo(name)) for name in GENERATOR_MODELS},
                **{name: (lambda name=name: tiny_checkpoint(name, root)) for name in PERCEPTION_MODELS}}
    seconds = {}
    for name, build in builders.items():
        started = time.perf_counter()
        marker = root / f".{name}.built"  # written after a complete build, so a killed build is redone
        if marker.exists():
            zoo.built.setdefault(name, root / name)  # a requirement of a later build (the LoRA's SDXL)
        else:
            build()
            marker.touch()
        seconds[name] = time.perf_counter() - started
    return seconds


if __name__ == "__main__":
    print(build_diffseg30k_tiny(sys.argv[1] if len(sys.argv) > 1 else "data"))
