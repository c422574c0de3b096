"""Train: fit a registry detector on a split, for the binary task (edited or not) and/or the
semantic task (which generator edited each pixel).

Everything comes from ``params:train`` (``conf/base/parameters_train.yml``):

- ``model`` (any ``models.detectors.list_detectors()`` entry), built with ``models[<model>]``
  (per-entry defaults) updated by ``model_kwargs``;
- ``task``: ``binary`` | ``semantic`` | ``both`` (or a list): which tasks are trained for real.
  Both nodes always write their checkpoint; a task left out gets an untrained (0-step)
  placeholder of the same model whose config says ``"skipped": "<why>"``, so the evaluate stage
  runs unchanged and flags it. To train one task and keep the other's checkpoint on disk, run one
  node: ``kedro run --pipeline train --nodes train_semantic_detector``;
- ``dataset``: ``protocol`` (null = the ``splits`` table, i.e. ``split.use``; or a protocol name of
  ``split_tables``), ``split`` (train) and ``val_split`` (used when ``trainer.val_every > 0``);
- ``exclude_generators``: edited items any of whose turns used one of them are dropped from the
  train and validation items (cross-generator protocol); recorded as ``held_out_generators``;
- ``trainer``: every ``models.detectors.training.TrainConfig`` field; ``checkpoint_dir`` is a base
  folder, each task trains in ``<checkpoint_dir>/<task>``.

Samples are decoded lazily (``SplitSamples``), so ``trainer.num_workers > 0`` decodes and
augments in DataLoader worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from models.detectors import create_detector, detector_state, detector_tasks, list_detectors
from models.detectors.training import TrainConfig, train_detector
from pipelines.contract.ids import SAFE_ID
from pipelines.contract.items import item_loaders
from pipelines.contract.labels import class_of, generator_entries, generator_names
from pipelines.contract.params import TrainDataset, TrainParams, merged, params_of

logger = logging.getLogger(__name__)

TASKS = ("binary", "semantic")


def class_names_for(task: str, generators: list[dict[str, Any]]) -> list[str]:
    """Class names in label order: background first, then edited / one per generator."""
    if task == "binary":
        return ["untouched", "edited"]
    if task == "semantic":
        return ["untouched", *generator_names(generators)]
    raise ValueError(f"train task must be one of {TASKS}, got {task!r}")


def selected_tasks(value: Any) -> list[str]:
    """``train.task`` -> the tasks to train: "binary", "semantic", "both"/"all" (or
    "binary+semantic"), or a list of them."""
    if value is None:
        return list(TASKS)
    names = value if isinstance(value, (list, tuple)) else str(value).replace("+", ",").split(",")
    tasks: list[str] = []
    for name in (str(n).strip() for n in names):
        if name in ("both", "all"):
            tasks += TASKS
        elif name in TASKS:
            tasks.append(name)
        elif name:
            raise ValueError(f"train.task must be binary, semantic, both or a list of them, got {value!r}")
    if not tasks:
        raise ValueError(f"train.task selects no task: {value!r}")
    return list(dict.fromkeys(tasks))


def model_kwargs_for(params: TrainParams | Mapping[str, Any]) -> dict[str, Any]:
    """``models[<model>]`` (per-entry defaults) updated by ``model_kwargs``."""
    params = params_of(TrainParams, params)
    name = params.model
    if name not in list_detectors():
        raise ValueError(f"train.model={name!r} is not a detector; known: {', '.join(list_detectors())}")
    defaults = params.models.get(name) or {}
    return {**defaults, **params.model_kwargs}


def excluded_names(exclude: Sequence[str] | str | None, generators: list[dict[str, Any]]) -> list[str]:
    """Configured generator names matched by ``train.exclude_generators`` (case-insensitive; a class
    label excludes every generator carrying it). Raises ValueError naming an unknown generator."""
    if not exclude:
        return []
    if isinstance(exclude, str):
        exclude = [e for e in exclude.replace("+", ",").split(",") if e.strip()]
    entries = generator_entries(generators)
    out: list[str] = []
    for wanted in exclude:
        key = str(wanted).strip().lower()
        matched = [e["name"] for e in entries if key in (e["name"].lower(), e["label"].lower())]
        if not matched:
            known = [e["name"] for e in entries]
            raise ValueError(f"train.exclude_generators names {wanted!r}, which is not in the generator list {known}")
        out += matched
    return list(dict.fromkeys(out))


def _row_generators(row: pd.Series) -> set[str]:
    value = row.get("generators")
    if isinstance(value, list) and value:  # names compare case-insensitively with train.exclude_generators
        return {g.lower() for g in value}
    last = row.get("last_generator")
    return {str(last).lower()} if isinstance(last, str) and last else set()


def drop_excluded(rows: pd.DataFrame, excluded: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Rows without any edit by an excluded generator (any turn, from the ``generators`` column;
    ``last_generator`` when it is absent). Authentic rows always stay. Returns (kept, n dropped)."""
    if not excluded or rows.empty:
        return rows, 0
    names = {g.lower() for g in excluded}
    hit = rows.apply(lambda r: r["kind"] == "edited" and bool(_row_generators(r) & names), axis=1).astype(bool)
    return rows[~hit].reset_index(drop=True), int(hit.sum())


class SplitSamples(Sequence):
    """``(image (H, W, 3) uint8, label_map (H, W) uint8)`` pairs of split rows, decoded when indexed.

    Holds only the loaders of its own rows (the catalog's lazy partition loaders), so it is small
    to hand to DataLoader worker processes. Authentic items get an all-zero label map.
    """

    def __init__(self, rows: pd.DataFrame, edited_images: Mapping[str, Callable], label_maps: Mapping[str, Callable],
                 base_images: Mapping[str, Callable], where: str = "split table"):
        self._items: list[tuple[Callable, Callable | None]] = [
            item_loaders(row, edited_images, label_maps, base_images, where) for row in rows.itertuples()]
        self.item_ids = list(rows["item_id"])

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_loader, label_loader = self._items[index]
        image = np.asarray(_value(image_loader))
        if label_loader is None:
            return image, np.zeros(image.shape[:2], dtype=np.uint8)
        return image, np.asarray(_value(label_loader))


def _value(loader: Any) -> Any:
    return loader() if callable(loader) else loader


def _table(dataset: TrainDataset, splits: pd.DataFrame, split_tables: Mapping[str, Any] | None) -> tuple[pd.DataFrame, str]:
    protocol = dataset.protocol
    if not protocol:
        return splits, "splits"
    tables = split_tables or {}
    if protocol not in tables:
        raise ValueError(f"train.dataset.protocol={protocol!r} is not a saved split protocol "
                         f"(data/05_model_input/splits/ holds: {sorted(tables)})")
    return _value(tables[protocol]), f"split_tables/{protocol}"


def held_out_of_protocol(split_protocols: pd.DataFrame | None, protocol: str | None,
                          generators: list[dict[str, Any]]) -> list[str]:
    """The classes (labels, ``contract.labels``) a saved protocol keeps out of training: a leave-out
    protocol's ``held_out``; for a train-on-one protocol, every class but the ones it trains on."""
    if split_protocols is None or not protocol or split_protocols.empty:
        return []
    rows = split_protocols[split_protocols["protocol"] == protocol]
    if rows.empty:
        return []
    row = rows.iloc[0]
    if row.get("kind") == "train_on_one" and isinstance(row.get("train_on"), str) and row["train_on"]:
        kept = {g.strip().lower() for g in row["train_on"].replace("+", ",").split(",")}
        return [c for c in generator_names(generators) if c.lower() not in kept]
    return [str(name) for name in row.get("held_out", [])]


def trainer_config(task: str, params: TrainParams | Mapping[str, Any]) -> TrainConfig:
    """``TrainConfig`` from ``params.trainer`` (its defaults are TrainConfig's); ``checkpoint_dir``
    gets ``/<task>`` appended. Raises ValueError naming unknown trainer settings."""
    params = params_of(TrainParams, params)
    settings = dict(params.trainer)
    settings.setdefault("seed", params.seed)
    if settings.get("checkpoint_dir"):
        settings["checkpoint_dir"] = str(Path(settings["checkpoint_dir"]) / task)
    if isinstance(settings.get("augment"), Mapping):
        settings["augment"] = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in settings["augment"].items()
                               if v is not None}
    return TrainConfig(task=task, **settings)


def _summary(history: dict[str, Any]) -> dict[str, Any]:
    loss = history["loss"]
    keys = ("steps", "seconds", "images_per_second", "stopped_by", "batch_size", "images_per_step", "world_size",
            "device", "amp", "resumed_from", "checkpoint_dir", "best")
    summary = {key: history.get(key) for key in keys}
    summary["first_loss"] = float(np.mean(loss[:5])) if loss else None
    summary["last_loss"] = float(np.mean(loss[-5:])) if loss else None
    validations = history.get("validation") or []
    summary["n_validations"] = len(validations)
    summary["last_validation"] = validations[-1] if validations else None
    summary["validation"] = validations  # the learning curve (pipelines.evaluate.learning_curve)
    return summary


def _train(task: str, splits: pd.DataFrame, split_tables: Mapping[str, Any] | None, split_protocols: pd.DataFrame | None,
           edited_images: dict[str, Callable], label_maps: dict[str, Callable], base_images: dict[str, Callable],
           params: TrainParams | dict[str, Any]) -> dict[str, Any]:
    params = params_of(TrainParams, params)
    generators = params.generators
    names = class_names_for(task, generators)
    dataset = params.dataset
    tasks = selected_tasks(params.task)
    excluded = excluded_names(params.exclude_generators, generators)
    kwargs = model_kwargs_for(params)
    cfg = trainer_config(task, params)
    table, table_name = _table(dataset, splits, split_tables)
    protocol = str(table["protocol"].iloc[0]) if "protocol" in table and len(table) else None
    classes = class_of(generators) if generators else {}
    held_out = list(dict.fromkeys([*(classes.get(g, g) for g in excluded),  # classes, as evaluate groups them
                                   *held_out_of_protocol(split_protocols, protocol, generators)]))
    record: dict[str, Any] = {"table": table_name, "protocol": protocol, "split": dataset.split}
    config: dict[str, Any] = {"task": task, "class_names": names, "held_out_generators": held_out,
                              "excluded_generators": excluded, "dataset": record}
    torch.manual_seed(params.seed)
    if params.num_threads:
        torch.set_num_threads(params.num_threads)

    if task not in tasks and task not in detector_tasks(params.model):
        # No placeholder can be built (e.g. IMDL-BenCo's binary-only entries): an empty state
        # and a marked record, which evaluate reports as skipped.
        reason = f"skipped: {params.model} is {'/'.join(detector_tasks(params.model))}-only"
        logger.warning("%s: %s", task, reason)
        return {"state": {}, "config": {**config, "skipped": reason, "unsupported_task": True, "detector": None,
                                        "trainer": cfg.as_dict(), "history": {"steps": 0, "stopped_by": "skipped"}}}
    if task not in tasks:
        model = create_detector(params.model, num_classes=len(names), **kwargs)
        reason = f"train.task={params.task!r} does not select the {task} task: untrained placeholder"
        logger.warning("%s: %s", task, reason)
        state, detector = detector_state(model)
        return {"state": state, "config": {**config, "skipped": reason, "detector": detector, "trainer": cfg.as_dict(),
                                           "history": {"steps": 0, "stopped_by": "skipped"}}}

    present = sorted(table["split"].unique()) if len(table) else []
    rows = table[table["split"] == dataset.split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"{table_name}: train.dataset.split={dataset.split!r} has no items (splits present: {present})")
    rows, dropped = drop_excluded(rows, excluded)
    where = f"{table_name} ({dataset.split})"
    samples = SplitSamples(rows, edited_images, label_maps, base_images, where=where)
    val_samples = None
    if cfg.val_every > 0:
        val_split = dataset.val_split
        val_rows = table[table["split"] == val_split].reset_index(drop=True)
        if val_rows.empty:
            raise ValueError(f"{table_name}: train.trainer.val_every > 0 but train.dataset.val_split={val_split!r} "
                             f"has no items (splits present: {present})")
        val_rows, val_dropped = drop_excluded(val_rows, excluded)
        val_samples = SplitSamples(val_rows, edited_images, label_maps, base_images, where=f"{table_name} ({val_split})")
        record.update(val_split=val_split, n_val=len(val_rows), n_val_dropped_excluded=val_dropped)
    record.update(n_items=len(rows), n_edited=int((rows["kind"] == "edited").sum()),
                  n_authentic=int((rows["kind"] == "authentic").sum()), n_dropped_excluded=dropped)
    model = create_detector(params.model, num_classes=len(names), **kwargs)
    logger.info("training %s (%s task, %d classes) on %s: %d items (%d edited, %d authentic, %d dropped for %s)",
                params.model, task, len(names), where, len(rows), record["n_edited"], record["n_authentic"],
                dropped, excluded or "no excluded generator")
    history = train_detector(model, samples, cfg, val_samples=val_samples)
    state, detector = detector_state(model)
    summary = _summary(history)
    logger.info("trained %s/%s: %s", params.model, task,
                {k: summary[k] for k in ("steps", "seconds", "images_per_second", "stopped_by", "first_loss", "last_loss")})
    return {"state": state, "config": {**config, "detector": detector, "trainer": cfg.as_dict(), "history": summary}}


def train_binary_detector(splits, split_tables, split_protocols, edited_images, label_maps, base_images, params):
    """Binary task: class 1 = any edited pixel. Returns a checkpoint dict {state, config}."""
    return _train("binary", splits, split_tables, split_protocols, edited_images, label_maps, base_images, params)


def train_semantic_detector(splits, split_tables, split_protocols, edited_images, label_maps, base_images, params):
    """Semantic task: class k = pixel last edited by generator k. Returns a checkpoint dict."""
    return _train("semantic", splits, split_tables, split_protocols, edited_images, label_maps, base_images, params)


def variant_params(params: TrainParams | Mapping[str, Any], name: str) -> TrainParams:
    """The train section of variant ``name``: ``train`` (without ``variants``) merged with
    ``train.variants[name]``; its trainer checkpoints go to ``<checkpoint_dir>/variants/<name>``
    so it never resumes from (nor overwrites) the main detector's.

    Raises:
        ValueError: ``name`` cannot name a file (``contract.ids.SAFE_ID``), or is not a variant.
    """
    params = params_of(TrainParams, params)
    if name not in params.variants:
        raise ValueError(f"train.variants has no {name!r}; known: {sorted(params.variants)}")
    if not SAFE_ID.match(name):
        raise ValueError(f"train.variants name {name!r} must be a file-safe id (letters, digits, . _ + = -)")
    section = merged(params.model_dump(exclude={"variants"}), params.variants[name])
    if section["trainer"].get("checkpoint_dir"):
        section["trainer"]["checkpoint_dir"] = str(Path(section["trainer"]["checkpoint_dir"]) / "variants" / name)
    return params_of(TrainParams, section)


def train_variants(splits, split_tables, split_protocols, edited_images, label_maps, base_images,
                   params) -> dict[str, dict[str, Any]]:
    """Every ``train.variants`` detector, trained by ``_train`` exactly as the main one but with
    its own section (``variant_params``: another model, task, split protocol or trainer), for each
    task its ``task`` selects. One run thus trains every detector a paper's tables need (DiffSeg30k:
    FCN-8s, Table 5's leave-out pairs, Tables 6-7's classifiers).

    Returns {"<variant>/<task>": checkpoint} (the checkpoint's config gets ``variant``); {} when no
    variant is configured.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in params_of(TrainParams, params).variants:
        section = variant_params(params, name)
        for task in selected_tasks(section.task):
            logger.info("train variant %s (%s, %s task)", name, section.model, task)
            checkpoint = _train(task, splits, split_tables, split_protocols, edited_images, label_maps, base_images, section)
            out[f"{name}/{task}"] = {**checkpoint, "config": {**checkpoint["config"], "variant": name}}
    return out
