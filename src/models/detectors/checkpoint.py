"""Detector checkpoints: weights in safetensors, configuration in JSON, never pickle.

A checkpoint ``<stem>`` is two files:

- ``<stem>.safetensors``: the detector's state dict (contiguous CPU tensors);
- ``<stem>.json``: ``{"format": ..., "config": model.config, "extra": {...}}`` where ``config``
  rebuilds the architecture through ``create_detector(**config)`` and ``extra`` is free-form
  JSON (training history, dataset id, task, ...).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .base import SegmentationDetector, create_detector, weights_follow

CHECKPOINT_FORMAT = "editlens-detector/1"

# Random initialisers that constructors call through a module attribute (so they can be swapped
# for the duration of a build): torch.nn.init's, and timm's truncated normal, whose erfinv over a
# 66 M-parameter encoder (TruFor's dual MiT-B2) takes seconds on a CPU.
_RANDOM_INITS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                 "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
_SKIP_LOCK = threading.Lock()


def _keep(tensor, *args, **kwargs):
    return tensor


@contextlib.contextmanager
def skip_random_init() -> Iterator[None]:
    """Within this block, ``torch.nn.init``'s random initialisers and timm's truncated normal leave
    their tensor as allocated. Only for a build whose every parameter and persistent buffer is
    overwritten right after by a strict ``load_state_dict`` (``detector_from_state``): the values
    they would draw are thrown away. Initialisers called as tensor methods (``w.normal_()``) still
    run. Process-wide while active (module attributes are swapped), so builds are serialised."""
    import torch.nn.init as init

    targets = [(init, name) for name in _RANDOM_INITS]
    try:
        import timm.layers.weight_init as timm_init

        targets.append((timm_init, "_trunc_normal_"))
    except ImportError:  # timm is optional for the models that do not use it
        pass
    with _SKIP_LOCK:
        saved = [(module, name, getattr(module, name)) for module, name in targets]
        for module, name, _ in saved:
            setattr(module, name, _keep)
        try:
            yield
        finally:
            for module, name, original in saved:
                setattr(module, name, original)


def detector_state(model: SegmentationDetector) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The detector's weights and configuration, ready to serialise.

    Returns:
        (state, config): ``state`` maps names to detached, contiguous CPU tensors that share no
        memory with the model; ``config`` is a copy of ``model.config``.

    Raises:
        ValueError: the model has no config (it was not built through ``create_detector``).
    """
    if not model.config.get("name"):
        raise ValueError("model.config is empty: build detectors with create_detector so they can be rebuilt")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    return state, dict(model.config)


def detector_from_state(state: dict[str, torch.Tensor], config: dict[str, Any]) -> SegmentationDetector:
    """Rebuild a detector from ``detector_state``'s output (strict key and shape match).

    The architecture is built without re-reading ``config["encoder_weights"]`` (the state dict
    already holds every weight, and that file may no longer exist); the returned model's
    ``config`` is ``config`` unchanged.

    Raises:
        UnknownNameError: ``config["name"]`` is not a registered detector.
        RuntimeError: the state dict does not match the architecture.
    """
    build_kwargs = dict(config)
    if "encoder_weights" in build_kwargs:
        build_kwargs["encoder_weights"] = None
    with weights_follow(), skip_random_init():
        model = create_detector(**build_kwargs)
    model.load_state_dict(state, strict=True)
    model.config = dict(config)
    return model


def _paths(path_stem: str | Path) -> tuple[Path, Path]:
    # Not with_suffix: a stem such as "deeplab.v1" must keep its dot.
    stem = str(path_stem)
    return Path(stem + ".safetensors"), Path(stem + ".json")


def save_checkpoint(path_stem: str | Path, model: SegmentationDetector, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<path_stem>.safetensors`` and ``<path_stem>.json`` (parent folders are created).

    Returns:
        The two paths written.
    Raises:
        TypeError: ``model.config`` or ``extra`` is not JSON-serialisable.
    """
    weights_path, meta_path = _paths(path_stem)
    state, config = detector_state(model)
    meta = json.dumps({"format": CHECKPOINT_FORMAT, "config": config, "extra": dict(extra or {})}, indent=2)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(weights_path), metadata={"format": CHECKPOINT_FORMAT})
    meta_path.write_text(meta + "\n")
    return weights_path, meta_path


def load_checkpoint(path_stem: str | Path, device: str | torch.device = "cpu") -> tuple[SegmentationDetector, dict[str, Any]]:
    """Load a checkpoint written by ``save_checkpoint``.

    Returns:
        (model, extra): the rebuilt detector (in eval mode, on ``device``) and the ``extra`` dict.
    Raises:
        FileNotFoundError: either file is missing.
        ValueError: the JSON is not a detector checkpoint of a known format.
    """
    weights_path, meta_path = _paths(path_stem)
    for path in (weights_path, meta_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise ValueError(f"{meta_path} is not a detector checkpoint (format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    model = detector_from_state(load_file(str(weights_path)), meta["config"])
    return model.to(device).eval(), meta.get("extra", {})
