"""Tiny random checkpoints for the BR-Gen recipe's tiny-scale run (``conf/brgen-tiny``), built
offline from configs into one folder, in the layouts the real checkpoints come in.

``python -m models.tiny_brgen data/06_models/tiny`` writes what ``conf/brgen-tiny``
names: GroundingDINO, SAM 2, Qwen2.5-VL (perception), LaMa / MAT TorchScript files, SDXL
inpainting, BrushNet and PowerPaint v2 (the five inpainters) and CLIP (the filter's text-image
score). A folder already holding a model is kept (the build is skipped), so repeated test
sessions build once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# What conf/brgen-tiny names, relative to the folder: name -> path.
BRGEN_TINY = {
    "grounding-dino": "tiny-grounding-dino", "sam2": "tiny-sam2", "qwen2.5-vl": "tiny-qwen2.5-vl",
    "lama": "lama.pt", "mat": "mat.pt", "sdxl-inpaint": "sdxl-inpaint", "brushnet": "brushnet",
    "powerpaint": "powerpaint", "clip": "clip",
}


def script_tiny_inpainter(path: Path, with_noise: bool) -> Path:
    """A TorchScript module with LaMa's ``forward(image, mask)`` (image in [0, 1], mask 1 = hole)
    or MAT's ``forward(image, mask, z)`` (image in [-1, 1], mask 1 = keep, z: (1, 512) style noise)."""
    import torch

    class TinyLama(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.conv(torch.cat([image * (1 - mask), mask], dim=1)))

    class TinyMat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)
            self.style = torch.nn.Linear(512, 3)

        def forward(self, image: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.conv(torch.cat([image * mask, mask], dim=1)) + self.style(z)[:, :, None, None])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = torch.jit.script(TinyMat() if with_noise else TinyLama())
    path.parent.mkdir(parents=True, exist_ok=True)
    module.save(str(path))
    return path


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A random tiny CLIP (32 px images, byte-level tokenizer built offline) with its processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from .generators.tiny import build_offline_clip_tokenizer

    folder = Path(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                         pad_token_id=513),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=build_offline_clip_tokenizer()).save_pretrained(folder)
    return folder


def _brgen_builders(root: Path) -> dict[str, Callable[[], object]]:
    from .generators import tiny_zoo
    from .perception.tiny import tiny_checkpoint

    return {
        "grounding-dino": lambda: tiny_checkpoint("grounding-dino", root),
        "sam2": lambda: tiny_checkpoint("sam2", root),
        "qwen2.5-vl": lambda: tiny_checkpoint("qwen2.5-vl", root),
        "lama": lambda: script_tiny_inpainter(root / BRGEN_TINY["lama"], with_noise=False),
        "mat": lambda: script_tiny_inpainter(root / BRGEN_TINY["mat"], with_noise=True),
        "sdxl-inpaint": lambda: tiny_zoo.build_tiny_sdxl(root / BRGEN_TINY["sdxl-inpaint"]),
        "brushnet": lambda: tiny_zoo.build_tiny_brushnet(root / BRGEN_TINY["brushnet"]),
        "powerpaint": lambda: tiny_zoo.build_tiny_powerpaint(root / BRGEN_TINY["powerpaint"]),
        "clip": lambda: build_tiny_clip(root / BRGEN_TINY["clip"]),
    }


def build_brgen(folder: str | Path) -> dict[str, Path]:
    """Every tiny model ``conf/brgen-tiny`` names, under ``folder``; name -> path. A model whose
    path already exists is not rebuilt."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    for name, build in _brgen_builders(root).items():
        if not (root / BRGEN_TINY[name]).exists():
            build()
    return {name: root / relative for name, relative in BRGEN_TINY.items()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m models.tiny_brgen <folder>", file=sys.stderr)
        return 2
    for name, path in build_brgen(args[0]).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
