"""DreamSim distance (Fu et al., NeurIPS 2023) of an edit to its base image, from LOCAL weight files.

BR-Gen filters its forgeries by DreamSim similarity to the original (paper section 3.4). This
scorer runs the ``dreamsim`` package (PyPI 0.2.1) itself, never its downloader:

- ``dreamsim.dreamsim(cache_dir=...)`` downloads a zip from GitHub whenever one of the files it
  expects is missing in ``cache_dir``. The scorer therefore checks every expected file first and
  raises ``FileNotFoundError`` naming the missing ones, so nothing is fetched at run time.
- The single-backbone variants ``clip_vitb32`` and ``open_clip_vitb32`` are built entirely from
  two local items: ``<type>_pretrain.pth.tar`` (the backbone, as the release zip has it) and the
  LoRA folder ``<type>_single_lora/`` (``adapter_config.json`` + adapter weights).
- ``ensemble`` (the package's default: DINO ViT-B/16 + CLIP ViT-B/16 + OpenCLIP ViT-B/16) and the
  ``dino*`` variants also build the DINO backbone through ``torch.hub.load("facebookresearch/dino:main")``;
  torch.hub reads it offline only when ``cache_dir`` also holds the hub checkout
  ``facebookresearch_dino_main/`` and ``checkpoints/dino_vitbase16_pretrain.pth`` (copied there once
  from a machine with GitHub access). The check lists those too.

The package needs ``peft`` and ``open_clip_torch`` (pinned with it in requirements.lock); where
they are absent the scorer fails at construction with a message naming them. The "perceptual" scorer (LPIPS
computation) is the stand-in that runs everywhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .base import QUALITY_SCORERS, QualityScorer, check_image

# Files dreamsim 0.2.1 expects in its cache folder, per variant (its ``download_weights`` list),
# plus what torch.hub needs offline for the DINO-based variants.
_DINO_HUB = ["facebookresearch_dino_main", "checkpoints/dino_vitbase16_pretrain.pth"]
DREAMSIM_FILES = {
    "ensemble": ["dino_vitb16_pretrain.pth", "open_clip_vitb16_pretrain.pth.tar", "clip_vitb16_pretrain.pth.tar",
                 "ensemble_lora/adapter_config.json", *_DINO_HUB],
    "dino_vitb16": ["dino_vitb16_pretrain.pth", "dino_vitb16_single_lora/adapter_config.json", *_DINO_HUB],
    "clip_vitb32": ["clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora/adapter_config.json"],
    "open_clip_vitb32": ["open_clip_vitb32_pretrain.pth.tar", "open_clip_vitb32_single_lora/adapter_config.json"],
}
_PACKAGES = ("dreamsim", "peft", "open_clip")


def check_dreamsim_folder(cache_dir: str | Path, dreamsim_type: str) -> Path:
    """Raise unless ``cache_dir`` holds every file ``dreamsim_type`` needs (so the package will
    not try to download). Returns the folder.

    Raises:
        ValueError: unknown ``dreamsim_type`` (the message lists ``DREAMSIM_FILES``).
        FileNotFoundError: the folder or some of its files are missing (named in the message).
    """
    if dreamsim_type not in DREAMSIM_FILES:
        raise ValueError(f"unknown dreamsim_type {dreamsim_type!r}; supported offline: {sorted(DREAMSIM_FILES)}")
    folder = Path(cache_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"DreamSim cache_dir {folder} is not a folder")
    missing = [name for name in DREAMSIM_FILES[dreamsim_type] if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(f"DreamSim {dreamsim_type!r}: {folder} lacks {missing} (the dreamsim package would "
                                "download them; put the release files there instead)")
    return folder


class DreamSimDistance(QualityScorer):
    """DreamSim distance (1 - cosine similarity of the embeddings, in [0, 2]) of an edited image to
    its base image; lower = more similar.

    Args:
        cache_dir: local folder with the DreamSim release files (see ``DREAMSIM_FILES``).
        dreamsim_type: "ensemble" (the package default), "dino_vitb16", "clip_vitb32" or "open_clip_vitb32".
        device: torch device string.

    Raises:
        ImportError: dreamsim / peft / open_clip are not installed (the message says which).
        ValueError, FileNotFoundError: as ``check_dreamsim_folder``.
    """

    name = "dreamsim"
    higher_is_better = False
    valid_range = (0.0, 2.0)
    min_side = 16
    needs = ("reference",)

    def __init__(self, cache_dir: str | Path, dreamsim_type: str = "ensemble", device: str = "cpu"):
        folder = check_dreamsim_folder(cache_dir, dreamsim_type)
        absent = [name for name in _PACKAGES if importlib.util.find_spec(name) is None]
        if absent:
            raise ImportError(f"the dreamsim scorer needs the packages {absent} (dreamsim==0.2.1, peft, "
                              "open-clip-torch), which this environment lacks; use the 'perceptual' scorer")
        import torch
        from dreamsim import dreamsim

        # torch.hub resolves the DINO checkout and its weights under this folder (no download when present).
        previous = torch.hub.get_dir()
        torch.hub.set_dir(str(folder))
        try:
            self.model, _ = dreamsim(pretrained=True, device=device, cache_dir=str(folder),
                                     dreamsim_type=dreamsim_type)
        finally:
            torch.hub.set_dir(previous)
        self.device = device
        self.dreamsim_type = dreamsim_type
        self.image_size = 224  # dreamsim's own preprocessing: bicubic resize to 224 x 224, [0, 1]

    def _tensor(self, image: np.ndarray):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return x.clamp(0, 1).to(self.device)

    def score(self, image: np.ndarray, reference: np.ndarray | None = None, **_: object) -> float:
        """Distance of ``image`` to ``reference`` (both (H, W, 3) uint8 RGB, any sizes).

        Raises:
            ValueError: ``reference`` missing, or a bad image.
        """
        if reference is None:
            raise ValueError("dreamsim needs the base image: score(image, reference=base)")
        check_image(image, self.min_side)
        check_image(reference, self.min_side)
        import torch

        with torch.no_grad():
            distance = self.model(self._tensor(image), self._tensor(reference))
        return float(distance.reshape(-1)[0])


@QUALITY_SCORERS.register("dreamsim", description="DreamSim distance to the base image (dreamsim package, local "
                                                   "weight files only; BR-Gen's similarity filter)")
def build_dreamsim(cache_dir: str, dreamsim_type: str = "ensemble", device: str = "cpu") -> DreamSimDistance:
    """See ``DreamSimDistance``."""
    return DreamSimDistance(cache_dir, dreamsim_type=dreamsim_type, device=device)
