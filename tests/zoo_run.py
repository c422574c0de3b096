"""ONE tiny baselines run over EVERY detector registry entry (ours and IMDL-BenCo's), shared by
the zoo test (``tests/models/test_zoo.py``: each entry trained a step, predicts in range,
round-trips its checkpoint) and the baselines test (``tests/pipelines/test_baselines.py``: one
table, one filled row per entry), so each entry is built and trained once per test session.

The entry list is the registry's (``list_detectors()``); each entry's builder arguments are its
tiny configuration in ``tests.models.test_zoo.TINY_ZOO`` (one place; an entry without one fails
here, naming it). Nothing may touch the network: socket connections and ``torch.hub.load`` of a
GitHub repository raise during the run (MVSS-Net's ResNet-50 comes from a temporary torch.hub
cache holding random torchvision weights).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

SIZE = 32  # every image of the run (the IMDL-BenCo entries resize to their own input_size)


def synthetic_split() -> dict:
    """Four train and four test items (half edited: a bright rectangle labelled 1), SIZE px."""
    rng = np.random.default_rng(0)
    images, labels, bases, rows = {}, {}, {}, []
    for index in range(8):
        split, item = ("train" if index < 4 else "test"), f"i{index}"
        image = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        if index % 2:
            label = np.zeros((SIZE, SIZE), np.uint8)
            image[6:22, 8:26], label[6:22, 8:26] = 220, 1
            images[item], labels[item] = image, label
            rows.append({"item_id": item, "split": split, "kind": "edited", "image_dataset": "edited_images",
                         "image_key": item, "label_key": item})
        else:
            bases[item] = image
            rows.append({"item_id": item, "split": split, "kind": "authentic", "image_dataset": "base_images",
                         "image_key": item, "label_key": ""})
    wrap = lambda d: {k: (lambda v=v: v) for k, v in d.items()}  # noqa: E731  (lazy partitions)
    return {"splits": pd.DataFrame(rows), "edited_images": wrap(images), "label_maps": wrap(labels), "base_images": wrap(bases)}


def tiny_params(models: dict) -> dict:
    """``baselines`` parameters: every detector of ``models`` (name -> builder arguments), one step."""
    return {"seed": 0, "train_split": "train", "eval_split": "test", "max_items": None, "detectors": list(models), "models": models,
            # Plain SGD: one update per weight, the cheapest real step for the 90 M-parameter ViT-B / Swin-B.
            "trainer": {"steps": 1, "batch_size": 2, "crop_size": None, "log_every": 0, "time_budget_s": None,
                        "optimizer": "sgd", "momentum": 0.0, "lr": 0.01}}


@dataclass
class EntryFacts:
    """What the zoo test asserts about one entry of the run."""

    row: dict
    trainable: int = 0                    # trainable parameter tensors
    changed: int = 0                      # of those, how many the training step changed
    probabilities: np.ndarray | None = None   # predict() on the 4 eval images: (4, 2, SIZE, SIZE)
    scores: np.ndarray | None = None          # (4,)
    reloaded_probabilities: np.ndarray | None = None  # the same, from the reloaded checkpoint
    reloaded_scores: np.ndarray | None = None
    same_config: bool = False             # reloaded.config == model.config and the extra came back
    seconds: float = 0.0                  # build + train + evaluate + checks


@dataclass
class ZooRun:
    table: pd.DataFrame
    facts: dict[str, EntryFacts] = field(default_factory=dict)
    github_hub_calls: list = field(default_factory=list)
    seconds: float = 0.0


def _fingerprint(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    with torch.no_grad():
        return {name: (float(p.double().sum()), float(p.double().square().sum()))
                for name, p in model.named_parameters() if p.requires_grad}


def run_zoo(folder: Path) -> ZooRun:
    """Run the baselines protocol (``run_baselines``, 1 step) over every registry entry."""
    import torchvision

    import pipelines.baselines.nodes as nodes
    from models.detectors import list_detectors, load_checkpoint, save_checkpoint
    from models.detectors.imdl import MVSS_RESNET50_FILE
    from models.detectors.training import predict
    from tests.models.test_zoo import TINY_ZOO

    missing = [name for name in list_detectors() if name not in TINY_ZOO]
    if missing:
        raise KeyError(f"registry entries without a tiny configuration in tests/models/test_zoo.py: {missing}")
    params = tiny_params({name: TINY_ZOO[name] for name in list_detectors()})
    data = synthetic_split()
    rows = nodes.select_rows(data["splits"], params)
    held = [image for image, _ in nodes.load_samples(rows[rows["role"] == "eval"], {
        "edited_images": data["edited_images"], "base_images": data["base_images"]}, data["label_maps"])]
    hub = folder / "torch_hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), hub / "checkpoints" / MVSS_RESNET50_FILE)

    run = ZooRun(table=pd.DataFrame())
    started = {"t": time.perf_counter()}
    before: dict[str, dict] = {}
    real_create, real_hub_load = nodes.create_detector, torch.hub.load

    def create_and_fingerprint(name, **kwargs):
        started["t"] = time.perf_counter()
        model = real_create(name, **kwargs)
        before[name] = _fingerprint(model)
        return model

    def on_trained(name, model, row):
        after = _fingerprint(model)
        facts = EntryFacts(row=dict(row), trainable=len(after),
                           changed=sum(after[k] != before[name].get(k) for k in after))
        facts.probabilities, facts.scores = predict(model, held, batch_size=4)
        path = folder / "checkpoint"
        written = save_checkpoint(path, model, extra={"task": "binary"})
        reloaded, extra = load_checkpoint(path)
        facts.same_config = extra == {"task": "binary"} and reloaded.config == model.config
        facts.reloaded_probabilities, facts.reloaded_scores = predict(reloaded, held, batch_size=4)
        for file in written:
            file.unlink()
        facts.seconds = time.perf_counter() - started["t"]
        run.facts[name] = facts

    def hub_load(repo_or_dir, *args, **kwargs):
        if kwargs.get("source", "github") == "github":
            run.github_hub_calls.append(repo_or_dir)
            raise RuntimeError(f"torch.hub.load({repo_or_dir!r}) would fetch a GitHub repository")
        return real_hub_load(repo_or_dir, *args, **kwargs)

    def no_connect(self, address):
        raise OSError(f"the zoo run tried to open a network connection to {address}")

    t0 = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nodes, "create_detector", create_and_fingerprint)
        patch.setattr(torch.hub, "load", hub_load)
        patch.setattr(torch.hub, "get_dir", lambda: str(hub))
        patch.setattr(socket.socket, "connect", no_connect)
        run.table = nodes.run_baselines(rows, data["edited_images"], data["label_maps"], data["base_images"], params,
                                        on_trained=on_trained)
    run.seconds = time.perf_counter() - t0
    return run
