"""Pretrained encoder weights by the libraries' own names, through the normal Hugging Face cache.

``encoder_weights`` of the smp-based detectors (DeepLabv3+, SegFormer, NFA-ViT's branches) may be
a LOCAL file (as before) or one of smp's weight names for that encoder (``"imagenet"``, ``"ssl"``,
...). A name resolves to smp's own pinned hub repository and revision
(``smp.encoders.encoders[name]["pretrained_settings"]``: e.g. ``smp-hub/resnet50.imagenet``) and
is read with ``huggingface_hub.hf_hub_download``: from the local cache when ``HF_HUB_OFFLINE=1``
(the Makefile sets it; a missing file is then an error naming the repository), downloaded into
that cache otherwise. ``HF_HUB_CACHE`` / ``HF_HOME`` move the cache (tests use a temporary one).
"""

from __future__ import annotations

import os
from pathlib import Path


def smp_weights_file(encoder_name: str, weights: str) -> Path:
    """The ``model.safetensors`` of smp's pretrained ``weights`` for ``encoder_name``, from the
    Hugging Face cache (see the module docstring).

    Raises:
        ValueError: smp knows no such encoder, or no such weights for it (lists the known ones).
        FileNotFoundError: offline and the file is not in the cache.
    """
    import segmentation_models_pytorch as smp
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if encoder_name not in smp.encoders.encoders:
        raise ValueError(f"smp has no encoder {encoder_name!r} (timm-universal 'tu-' encoders take weights from timm)")
    settings = smp.encoders.encoders[encoder_name].get("pretrained_settings", {})
    if weights not in settings:
        raise ValueError(f"smp encoder {encoder_name!r} has no pretrained weights {weights!r}; known: {sorted(settings)}")
    repo_id, revision = settings[weights]["repo_id"], settings[weights].get("revision")
    try:
        return Path(hf_hub_download(repo_id, filename="model.safetensors", revision=revision))
    except LocalEntryNotFoundError as exc:
        raise FileNotFoundError(
            f"{encoder_name} weights {weights!r} ({repo_id}@{revision}) are not in the Hugging Face cache "
            f"and HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')!r} forbids the download: {exc}"
        ) from exc


def resolve_encoder_weights(encoder_name: str, weights: str | os.PathLike | None) -> str | os.PathLike | None:
    """``weights`` unchanged when it is None or an existing local file; otherwise it must be a
    weight name smp knows for ``encoder_name`` and the cached file's path is returned.

    Raises:
        FileNotFoundError: a path-looking value (with a separator or a suffix) that is not a file.
        ValueError / FileNotFoundError: as ``smp_weights_file``.
    """
    return _resolve(weights, lambda name: smp_weights_file(encoder_name, name))


def _resolve(weights: str | os.PathLike | None, by_name) -> str | os.PathLike | None:
    if weights is None or Path(weights).is_file():
        return weights
    text = os.fspath(weights)
    if os.sep in text or Path(text).suffix:
        raise FileNotFoundError(f"encoder weights file not found: {text}")
    return by_name(text)


# "imagenet" for torchvision backbones: the original ImageNet-1k weights (what CNNSpot, FCN and
# MVSS-Net were trained from); torchvision's own enum names ("IMAGENET1K_V2", ...) also work.
TORCHVISION_ALIASES = {"imagenet": "IMAGENET1K_V1"}


def torchvision_weights_file(architecture: str, weights: str) -> Path:
    """The file of torchvision's pretrained ``weights`` for ``architecture`` in torch.hub's cache
    (``$TORCH_HOME/hub/checkpoints/<name from the weights' URL>``). Nothing is downloaded.

    Raises:
        ValueError: torchvision has no such architecture or weights (lists the known ones).
        FileNotFoundError: the file is not in the cache (the message names the path and URL).
    """
    import torch
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(architecture)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"torchvision has no architecture {architecture!r}") from exc
    name = TORCHVISION_ALIASES.get(weights, weights)
    known = [member.name for member in enum]
    if name not in known:
        raise ValueError(f"torchvision {architecture} has no weights {weights!r}; known: imagenet, {', '.join(known)}")
    url = enum[name].url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not path.is_file():
        raise FileNotFoundError(f"torchvision {architecture} weights {name} are not in torch.hub's cache: {path} "
                                f"(nothing is downloaded; fetch {url} there, or set TORCH_HOME)")
    return path


def resolve_torchvision_weights(architecture: str, weights: str | os.PathLike | None) -> str | os.PathLike | None:
    """As ``resolve_encoder_weights`` for torchvision backbones (CNNSpot, FCN-8s)."""
    return _resolve(weights, lambda name: torchvision_weights_file(architecture, name))
