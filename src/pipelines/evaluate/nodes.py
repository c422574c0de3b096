"""Evaluate: run a trained detector on the evaluation split under the seeds' protocols and write
what a paper would show.

Protocols (``evaluate.run`` selects; each is computed from per-image counts, see
``models.metrics.DetectionMetrics``):

- ``in_domain``: the whole split, clean.
- ``breakdowns``: the same predictions grouped by generator, turn count, mask-area bucket and
  region kind (no second prediction pass).
- ``robustness``: the split re-predicted after each perturbation of the images (JPEG, resize
  and back, Gaussian blur); the label maps are untouched.
- ``cross_generator``: the images made by generators the detector never saw in training.
- ``lora_as_parent``: a generator variant's edits scored as its parent's class.
- ``brgen``: BR-Gen's Tables 2-4 and 7 from the same predictions (``pipelines.evaluate.brgen``).

Every number says which convention it follows: dataset-level confusion matrix (pytorch-fcn /
DeepLabV3Plus-Pytorch, DiffSeg30k) or per-image average (IMDL-BenCo).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from models.detectors import detector_from_state  # noqa: E402
from models.detectors.inference import image_score_definition, predict  # noqa: E402
from models.metrics import DetectionMetrics  # noqa: E402
from models.perturbations import list_perturbations, perturb  # noqa: E402
from pipelines.evaluate import figures, paper_tables, report  # noqa: E402
from pipelines.evaluate.brgen import brgen_tables  # noqa: E402
from pipelines.evaluate.learning_curve import learning_curve_figure  # noqa: E402
from pipelines.evaluate.protocols import (  # noqa: E402
    BREAKDOWNS,
    LOCAL_BREAKDOWN,
    breakdown_groups,
    held_out_groups,
    item_table,
    label_of_generator,
    mean_over_groups,
    selected_protocols,
)
from pipelines.contract.items import load_split_items  # noqa: E402
from pipelines.contract.labels import class_of  # noqa: E402
from pipelines.contract.params import EvaluateParams, merged, params_of  # noqa: E402
from pipelines.contract.summary import MetricsSummary  # noqa: E402

logger = logging.getLogger(__name__)


CONVENTIONS = {
    "pixel": "dataset level: ONE confusion matrix accumulated over all images of the set "
             "(pytorch-fcn / DeepLabV3Plus-Pytorch, as DiffSeg30k); mIoU excludes background",
    "pixel_per_image": "IMDL-BenCo: pixel edited when 1 - p(untouched) > threshold (strict); F1 / IoU / "
                       "accuracy per image, averaged over images; F1 = IoU = 0 on authentic images; AUC per image "
                       "ranks 1 - p(untouched) against the image's mask (IMDL-BenCo PixelAUC: 0 on authentic images)",
    "pixel_auc_pooled": "pixel.auc_pooled: one ROC AUC over every pixel of the set, 1 - p(untouched) binned to 0.001",
    "boundary_f1": "boundary pixels (4-neighbour class change) of prediction and ground truth matched "
                   "within the tolerance (Euclidean, <=); F1 per class from counts summed over the set; "
                   "mean over edited classes, background excluded",
    "boundary_f1_bfscore": "MATLAB bfscore (Csurka et al. 2013): per image and class, boundary pixels matched within "
                           "0.75 % of the image diagonal (distance <); each image the mean of its edited classes, "
                           "then the mean over images; background excluded",
    "image": "image score as in models.detectors.inference.predict (see image_score); fake when score > "
             "threshold (strict); AP step-wise as scikit-learn; R@50 = recall of fake / of real images at 0.5",
}

def _chunks(length: int, size: int):
    for start in range(0, length, max(1, size)):
        yield np.arange(start, min(start + max(1, size), length))


class _Evaluation:
    """One checkpoint against one split: loads items chunk by chunk, predicts, and feeds
    ``DetectionMetrics`` so memory stays bounded whatever the split size."""

    def __init__(self, checkpoint, rows, edited_images, label_maps, base_images, settings):
        config = checkpoint["config"]
        self.task, self.names = config["task"], list(config["class_names"])
        self.model = detector_from_state(checkpoint["state"], config["detector"])
        self.pixel_level = bool(getattr(self.model, "pixel_level", True))
        self.rows, self.settings = rows, settings
        self.loaders = (edited_images, label_maps, base_images)
        self.is_fake = (rows["kind"] == "edited").to_numpy().astype(int)

    def new_metrics(self) -> DetectionMetrics:
        s = self.settings
        return DetectionMetrics(self.names, boundary_tolerance_px=s.boundary_tolerance_px,
                                pixel_threshold=float(s.pixel_threshold), image_threshold=float(s.image_threshold),
                                pixel_level=self.pixel_level)

    def load(self, positions: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        items, _ = load_split_items(self.rows.iloc[positions], self.settings.split, *self.loaders)
        targets = np.stack([label if self.task == "semantic" else (label > 0) for _, label in items]).astype(np.int64)
        return [image for image, _ in items], targets

    def run(self, perturbation: tuple[str, float] | None = None,
            on_chunk: Callable[[np.ndarray, list, np.ndarray, np.ndarray, np.ndarray], None] | None = None):
        """Predict the split (perturbed if asked) and return its DetectionMetrics; ``on_chunk``
        sees (positions, images, targets, probabilities, scores) of each chunk. The detector sees
        each image at ``input_size`` (or at the absolute side of a ``resize_to`` condition) and
        its probabilities are resized back (bilinear) to the label map's size."""
        metrics = self.new_metrics()
        feed = self.settings.input_size
        if perturbation is not None and perturbation[0] == RESIZE_TO:
            feed, perturbation = int(perturbation[1]), None
        for positions in _chunks(len(self.rows), self.settings.chunk_size):
            images, targets = self.load(positions)
            if perturbation is not None:
                images = [perturb(image, *perturbation) for image in images]
            probabilities, scores = predict(self.model, [_fed(image, feed) for image in images],
                                            batch_size=self.settings.batch_size)
            if probabilities.shape[-2:] != targets.shape[-2:]:
                probabilities = torch.nn.functional.interpolate(
                    torch.from_numpy(probabilities), size=targets.shape[-2:], mode="bilinear", align_corners=False).numpy()
            self.update(metrics, positions, targets, probabilities, scores)
            if on_chunk is not None:
                on_chunk(positions, images, targets, probabilities, scores)
        return metrics

    def update(self, metrics: DetectionMetrics, positions, targets, probabilities, scores) -> None:
        if self.pixel_level:
            metrics.update(scores, self.is_fake[positions], probabilities.argmax(axis=1), targets,
                           1.0 - probabilities[:, 0])
        else:
            metrics.update(scores, self.is_fake[positions])


RESIZE_TO = "resize_to"  # DiffSeg30k Table 3: the image fed at an absolute side (evaluate's own, not models.perturbations)


def _fed(image: np.ndarray, side: int | None) -> np.ndarray:
    """``image`` resized to ``side`` x ``side`` (area when shrinking, bilinear when growing); as is for None."""
    if not side or image.shape[:2] == (side, side):
        return image
    shrink = side * side < image.shape[0] * image.shape[1]
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def evaluate_checkpoint(checkpoint, splits, samples, provenance, edited_images, label_maps, base_images, params):
    """``evaluate_trained`` for a checkpoint the train stage built; ``_unsupported``'s outputs for
    a task it could not build the model for (``config["unsupported_task"]``)."""
    if checkpoint["config"].get("unsupported_task"):
        return _unsupported(checkpoint["config"])
    return evaluate_trained(checkpoint, splits, samples, provenance, edited_images, label_maps, base_images, params)


def evaluate_trained(
    checkpoint: dict[str, Any],
    splits: pd.DataFrame,
    samples: pd.DataFrame,
    provenance: pd.DataFrame,
    edited_images: dict[str, Callable],
    label_maps: dict[str, Callable],
    base_images: dict[str, Callable],
    params: dict[str, Any],
) -> tuple[dict[str, Any], plt.Figure, dict[str, plt.Figure], np.ndarray]:
    """Evaluate one checkpoint with every protocol selected in ``params['run']``.

    Returns (metrics: JSON-ready dict whose top level is the in-domain result and whose
    ``protocols`` key holds each protocol; confusion-matrix figure; overlay figures keyed
    ``<task>-<item>.png``; qualitative grid as an (H, W, 3) uint8 image).
    """
    s = params_of(EvaluateParams, params)
    protocols = selected_protocols(s.run)
    if s.num_threads:
        torch.set_num_threads(s.num_threads)
    apart = s.label_parent if s.protocols.lora_as_parent.study_apart else {}
    rows, study_rows = study_apart(_split_rows(splits, s.split), samples, provenance, apart)
    ev = _Evaluation(checkpoint, rows, edited_images, label_maps, base_images, s)
    config = checkpoint["config"]
    items = item_table(rows, samples, provenance, class_of(s.generators) if s.generators else None)
    generator_labels = label_of_generator(provenance)
    notes = _notes(ev, config)
    timing: dict[str, float] = {}
    # In-domain pass; also collects the examples and the LoRA-remapped metrics (same predictions).
    example_positions = _overlay_indices(rows, s.n_overlays)
    examples: dict[int, tuple] = {}
    lora = _LoraRemap(ev, items, s) if "lora_as_parent" in protocols and study_rows is None else None

    def on_chunk(positions, images, targets, probabilities, scores):
        for k, position in enumerate(positions):
            if position in example_positions:
                examples[int(position)] = (images[k], targets[k], probabilities[k].argmax(axis=0), float(scores[k]))
        if lora is not None:
            lora.update(positions, targets, probabilities, scores)

    started = time.perf_counter()
    clean = ev.run(on_chunk=on_chunk)
    timing["in_domain"] = time.perf_counter() - started
    in_domain = clean.summary()
    results: dict[str, Any] = {"in_domain": in_domain}

    for name, protocol in (("breakdowns", lambda: _breakdowns(clean, items, s)),
                           ("robustness", lambda: _robustness(ev, s, items))):
        if name in protocols:
            started = time.perf_counter()
            results[name] = protocol()
            timing[name] = time.perf_counter() - started
    if "cross_generator" in protocols:
        results["cross_generator"] = _cross_generator(clean, items, s, config)
    if lora is not None:
        results["lora_as_parent"] = lora.summary(clean)
    elif "lora_as_parent" in protocols:  # re-edit twins: evaluated apart (study_apart)
        results["lora_as_parent"] = _reedit_study(checkpoint, study_rows, samples, provenance,
                                                  (edited_images, label_maps, base_images), s)
    if "brgen" in protocols:  # BR-Gen Tables 2-4 and 7 (pipelines.evaluate.brgen)
        results["brgen"] = brgen_tables(clean, items, s.protocols.brgen, float(s.image_threshold), config)

    metrics = MetricsSummary(
        task=ev.task, model=config["detector"].get("name"), pixel_level=ev.pixel_level,
        split=s.split, class_names=ev.names, held_out_generators=config.get("held_out_generators"),
        conventions={**CONVENTIONS, "image_score": image_score_definition(ev.model),
                     "boundary_tolerance_px": s.boundary_tolerance_px},
        n_images=len(rows), n_edited=int(ev.is_fake.sum()), n_authentic=int(len(rows) - ev.is_fake.sum()),
        pixel=None if in_domain["pixel"] is None else {"convention": CONVENTIONS["pixel"], **in_domain["pixel"]},
        pixel_per_image=in_domain["pixel_per_image"],
        image={"score": image_score_definition(ev.model), **(in_domain["image"] or {})},
        confusion_matrix=in_domain["confusion_matrix"], protocols=results, notes=notes,
        generator_labels=generator_labels, training=config.get("history", {}), timing_s=timing,
    ).to_json()
    _log_summary(metrics)
    return (metrics, *_evaluation_figures(ev, rows, items, examples, example_positions, in_domain))


def _notes(ev: _Evaluation, config: dict[str, Any]) -> list[str]:
    """What a reader must know before reading the numbers: an image-level model, an untrained task."""
    notes = []
    if not ev.pixel_level:
        notes.append(f"{config['detector'].get('name')} is an image-level classifier (pixel_level = False): "
                     "only image-level metrics are reported; pixel metrics are None.")
    if config.get("skipped"):  # written by the train stage for a task that train.task left out
        notes.append(f"NOT TRAINED: {config['skipped']}; these are the numbers of random weights.")
    return notes


def _evaluation_figures(ev: _Evaluation, rows: pd.DataFrame, items: pd.DataFrame, examples: dict[int, tuple],
                        example_positions: list[int], in_domain: dict[str, Any]):
    """(confusion-matrix figure, overlay figures keyed ``<task>-<item>.png``, examples grid (H,W,3) uint8)."""
    names = ev.names
    overlays = {
        f"{ev.task}-{rows.at[i, 'item_id']}.png": figures.overlay_figure(examples[i][0], examples[i][1], examples[i][2], names,
                                                                      rows.at[i, "item_id"], ev.pixel_level, examples[i][3])
        for i in example_positions
    }
    captions = [_example_caption(rows, items, i) for i in example_positions]
    grid = figures.examples_grid([examples[i] for i in example_positions], captions, names, ev.task, ev.pixel_level)
    confusion = figures.confusion_figure(np.asarray(in_domain["confusion_matrix"]), names, ev.task) if ev.pixel_level \
        else figures.message_figure(f"{ev.task}: image-level model, no pixel confusion matrix")
    return confusion, overlays, grid


class _LoraRemap:
    """DiffSeg30k Table 4: a generator variant (e.g. an SDXL LoRA) scored as its parent's class.

    ``label_parent`` maps variant -> parent generator names. When the semantic checkpoint has a
    class of its own for the variant, the variant's pixels are relabelled as the parent in the
    ground truth and the variant's predicted probability is added to the parent's before argmax;
    when the label maps already carry the parent's label (the variant was configured with its
    parent's label), the images are simply the variant's group.
    """

    def __init__(self, ev: _Evaluation, items: pd.DataFrame, settings: EvaluateParams):
        self.ev = ev
        self.pairs = dict(settings.label_parent)
        self.membership = settings.protocols.lora_as_parent.membership
        self.groups = breakdown_groups(items, "generator", membership=self.membership,  # variants by name
                                       include_authentic=settings.groups_include_authentic, column="generators")
        self.metrics: dict[str, DetectionMetrics] = {}
        self.remap: dict[str, tuple[int, int]] = {}
        names = ev.names
        for variant, parent in self.pairs.items():
            if variant in self.groups and ev.task == "semantic" and variant in names and parent in names:
                self.remap[variant] = (names.index(variant), names.index(parent))
                self.metrics[variant] = ev.new_metrics()

    def update(self, positions, targets, probabilities, scores) -> None:
        for variant, (source, destination) in self.remap.items():
            keep = np.isin(positions, self.groups[variant])
            if not keep.any():
                continue
            target = np.where(targets[keep] == source, destination, targets[keep])
            merged = probabilities[keep].copy()
            merged[:, destination] += merged[:, source]
            merged[:, source] = 0.0
            self.ev.update(self.metrics[variant], positions[keep], target, merged, scores[keep])

    def summary(self, clean: DetectionMetrics) -> dict[str, Any]:
        if not self.pairs:
            return {"skipped": "no variants configured (evaluate.label_parent: {variant: parent})"}
        out: dict[str, Any] = {"membership": self.membership, "pairs": []}
        for variant, parent in self.pairs.items():
            entry: dict[str, Any] = {"variant": variant, "parent": parent}
            if variant not in self.groups:
                entry["skipped"] = f"no evaluation image was edited by {variant!r}"
            else:
                entry["relabelled"] = variant in self.remap
                remapped = self.metrics.get(variant)
                entry["variant_as_parent"] = remapped.summary() if remapped else clean.summary(self.groups[variant])
                entry["parent_edits"] = clean.summary(self.groups[parent]) if parent in self.groups else None
            out["pairs"].append(entry)
        return out


def _split_rows(splits: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = splits[splits["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split {split!r} has no items (splits present: {sorted(splits['split'].unique())})")
    return rows


def study_apart(rows: pd.DataFrame, samples: pd.DataFrame, provenance: pd.DataFrame,
                label_parent: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(rows without the re-edit study's items, the study's rows or None). DiffSeg30k Table 4: the
    items a ``label_parent`` variant edited (inpaint.reedit's twins) are a study of their own: every
    other protocol leaves them out; the study scores them beside the items their parent edited."""
    variants, parents = set(label_parent), set(label_parent.values())
    if not variants:
        return rows, None
    generators = item_table(rows, samples, provenance)["generators"].map(set)
    study = generators.map(lambda g: bool(g & variants)).to_numpy()
    if not study.any():
        return rows, None
    parent = generators.map(lambda g: bool(g & parents)).to_numpy() & ~study
    return rows[~study].reset_index(drop=True), rows[study | parent].reset_index(drop=True)


def _reedit_study(checkpoint, study_rows, samples, provenance, loaders, s: EvaluateParams) -> dict[str, Any]:
    """``lora_as_parent`` on the re-edit study's rows (``study_apart``): one prediction pass."""
    ev = _Evaluation(checkpoint, study_rows, *loaders, s)
    lora = _LoraRemap(ev, item_table(study_rows, samples, provenance), s)
    clean = ev.run(on_chunk=lambda positions, _, targets, probabilities, scores:
                   lora.update(positions, targets, probabilities, scores))
    return {**lora.summary(clean), "items": "re-edit twins (inpaint.reedit) and the items their parent edited; "
                                            "every other protocol leaves the twins out"}


def _breakdowns(clean: DetectionMetrics, items: pd.DataFrame, s: EvaluateParams) -> dict[str, Any]:
    cfg = s.protocols.breakdowns
    out: dict[str, Any] = {"membership": cfg.membership, "include_authentic": s.groups_include_authentic}
    for by in cfg.by or BREAKDOWNS:
        authentic = "partition" if by == "generator" and cfg.authentic == "partition" else s.groups_include_authentic
        groups = breakdown_groups(items, by, membership=cfg.membership, area_edges=cfg.area_buckets,
                                  include_authentic=authentic)
        out[by] = {name: clean.summary(positions) for name, positions in groups.items()}
        if cfg.mean and by in ("generator", LOCAL_BREAKDOWN):  # the papers' AVG column over the test generators
            out[f"{by}_mean"] = mean_over_groups(out[by])
    return out


def robustness_conditions(cfg: dict[str, Any]) -> list[tuple[str, float]]:
    """(perturbation, level) pairs from ``protocols.robustness`` ({jpeg: [60, 80], resize: [0.5, 2],
    blur: [0.5, 1, 2]}), in the order written. Raises KeyError for an unknown perturbation."""
    conditions = []
    for name, levels in (cfg or {}).items():
        if name not in [*list_perturbations(), RESIZE_TO]:
            raise KeyError(f"unknown perturbation {name!r} in evaluate.protocols.robustness; known: "
                           f"{[*list_perturbations(), RESIZE_TO]}")
        conditions += [(name, float(level)) for level in (levels or [])]
    return conditions


def _robustness(ev: _Evaluation, s: EvaluateParams, items: pd.DataFrame) -> dict[str, Any]:
    conditions = robustness_conditions(s.protocols.robustness)
    if not conditions:
        return {"skipped": "no perturbations configured (evaluate.protocols.robustness)", "conditions": []}
    out = {"applied_to": "evaluation images only; label maps untouched", "conditions": []}
    local = breakdown_groups(items, LOCAL_BREAKDOWN, membership=s.protocols.breakdowns.membership) \
        if s.protocols.robustness_by_generator else {}
    for name, level in conditions:
        started = time.perf_counter()
        metrics = ev.run(perturbation=(name, level))
        condition = {"name": condition_name(name, level), "perturbation": name, "level": level,
                     "seconds": time.perf_counter() - started, **metrics.summary()}
        if local:  # OpenSDI Fig. 5: each named class's local edits under the perturbation
            condition["generator_local"] = {g: metrics.summary(local[g]) if g in local else
                                            {"skipped": f"no local edit of class {g!r} in the split"}
                                            for g in s.protocols.robustness_by_generator}
        out["conditions"].append(condition)
        logger.info("%s under %s: %s", ev.task, condition_name(name, level), _headline(condition))
    return out


def condition_name(perturbation: str, level: float) -> str:
    """Display name of a robustness condition: "JPEG 60", "resize x0.5", "blur sigma 1"."""
    level_text = f"{level:g}"
    return {"jpeg": f"JPEG {level_text}", "resize": f"resize x{level_text}", "blur": f"blur sigma {level_text}",
            RESIZE_TO: f"resize {level_text}"}.get(
        perturbation, f"{perturbation} {level_text}")


def _cross_generator(clean: DetectionMetrics, items: pd.DataFrame, s: EvaluateParams, config: dict[str, Any]) -> dict:
    cfg = s.protocols.cross_generator
    held_out, source = cfg.held_out, "params (evaluate.protocols.cross_generator.held_out)"
    if not held_out:
        held_out, source = config.get("held_out_generators"), "checkpoint (trained with train.exclude_generators)"
    if not held_out:
        return {"skipped": "the checkpoint lists no held-out generators and "
                           "evaluate.protocols.cross_generator.held_out is empty"}
    # by class label: a configured name (train.exclude_generators may give one) counts as its class
    classes = class_of(s.generators) if s.generators else {}
    held_out = list(dict.fromkeys(classes.get(str(g), str(g)) for g in held_out))
    membership = cfg.membership
    groups = held_out_groups(items, held_out, membership=membership, include_authentic=s.groups_include_authentic)
    return {
        "held_out": held_out, "source": source, "membership": membership, "missing": groups["missing"],
        "held_out_set": clean.summary(groups["held_out_set"]),
        "seen_set": clean.summary(groups["seen_set"]),
        "per_generator": {name: clean.summary(positions) for name, positions in groups["per_generator"].items()},
    }


def _overlay_indices(rows: pd.DataFrame, count: int) -> list[int]:
    """Up to ``count - 1`` edited items, taking each generator (by last edit) in turn so every
    class is shown, plus one authentic item."""
    edited = rows[rows["kind"] == "edited"]
    queues = [list(group.index) for _, group in edited.groupby("last_generator", sort=True)]
    picked: list[int] = []
    while queues and len(picked) < max(count - 1, 1):
        for queue in list(queues):
            if queue and len(picked) < max(count - 1, 1):
                picked.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    authentic = list(rows.index[rows["kind"] == "authentic"])
    return (picked + authentic[:1])[:count]


def _example_caption(rows: pd.DataFrame, items: pd.DataFrame, position: int) -> str:
    item = items.loc[position]
    if item["kind"] != "edited":
        return f"{rows.at[position, 'item_id']}\nauthentic"
    turns = "\n".join(f"turn {k}: {name}" for k, name in enumerate(item["generators"], start=1))
    return f"{rows.at[position, 'item_id']}\n{turns}\n{item['edited_area_ratio']:.0%} edited"


# Wall-clock measurements (anywhere in the document: stage timings, training speed, each
# robustness condition's time): they differ between two runs of the same seed, so metrics.json
# (which must be byte-identical run to run) leaves them out; metrics_<task>.json keep them.
RUN_DEPENDENT = frozenset({"timing_s", "seconds", "images_per_second", "seconds_including_start"})


def _seed_determined(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _seed_determined(v) for k, v in value.items() if k not in RUN_DEPENDENT}
    if isinstance(value, list):
        return [_seed_determined(v) for v in value]
    return value


def _unsupported(config: dict[str, Any]) -> tuple[dict[str, Any], plt.Figure, dict, np.ndarray]:
    """Outputs for a task the entry cannot do (e.g. a binary-only IMDL-BenCo model's semantic
    task): metrics carry only the train stage's note; the report and comparison leave the task out."""
    figure = plt.figure(figsize=(2, 1))
    figure.text(0.5, 0.5, config["skipped"], ha="center", va="center", fontsize=6)
    metrics = {"task": config.get("task"), "unsupported_task": True, "skipped": config["skipped"],
               "notes": [f"{config.get('task')} task {config['skipped']}: not evaluated."]}
    return metrics, figure, {}, np.zeros((8, 8, 3), np.uint8)


def combine_metrics(binary: dict[str, Any], semantic: dict[str, Any],
                    variants: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON document for both tasks (and, under ``variants``, every ``train.variants``
    detector's: ``variants/<name>/<task>/...``), without the wall-clock fields
    (``RUN_DEPENDENT``): with a fixed step count (``train.trainer.time_budget_s: null``) the same
    seed gives the same file."""
    out = {"binary": _seed_determined(binary), "semantic": _seed_determined(semantic)}
    if variants:
        out["variants"] = _seed_determined(variants)
    return out


def evaluate_variants(checkpoints: dict[str, Any], splits: pd.DataFrame, split_tables: dict[str, Any],
                      samples: pd.DataFrame, provenance: pd.DataFrame, edited_images: dict[str, Callable],
                      label_maps: dict[str, Callable], base_images: dict[str, Callable],
                      params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every ``train.variants`` detector (``detector_variants``: "<variant>/<task>" -> checkpoint
    or its loader) evaluated like the main ones (``evaluate_checkpoint``) on the split table it
    was trained from (its config's ``dataset.table``: ``splits`` or ``split_tables/<protocol>``),
    with ``evaluate`` merged with ``run: [in_domain], n_overlays: 0`` and then with
    ``evaluate.variants[<variant>]`` (e.g. a leave-out pair: ``split: test``, ``cross_generator``).

    Returns {variant: {task: metrics}}; a variant whose evaluation split has no items gets
    ``{"skipped": <why>}`` for that task (paper tables then say so).
    """
    base = {k: v for k, v in dict(params).items() if k != "variants"}
    settings = params_of(EvaluateParams, params).variants
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(checkpoints):
        checkpoint = checkpoints[key]() if callable(checkpoints[key]) else checkpoints[key]
        name, task = key.rsplit("/", 1)
        section = merged(merged(base, {"run": ["in_domain"], "n_overlays": 0}), settings.get(name, {}))
        where = checkpoint["config"].get("dataset", {}).get("table", "splits")
        table = splits if where == "splits" else split_tables[where.split("/", 1)[1]]
        table = table() if callable(table) else table
        split = params_of(EvaluateParams, section).split
        if not (table["split"] == split).any():
            out.setdefault(name, {})[task] = {"skipped": f"{where} has no {split!r} items"}
            continue
        metrics, *figures = evaluate_checkpoint(checkpoint, table, samples, provenance, edited_images, label_maps,
                                                base_images, section)
        plt.close(figures[0])
        for figure in figures[1].values():
            plt.close(figure)
        out.setdefault(name, {})[task] = metrics
    return out


def build_report(binary: dict[str, Any], semantic: dict[str, Any], examples_binary: np.ndarray,
                 examples_semantic: np.ndarray, params: dict[str, Any], detector_binary: dict[str, Any] | None = None,
                 detector_semantic: dict[str, Any] | None = None, variants: dict[str, Any] | None = None) -> str:
    """The self-contained HTML report of this evaluation run (both tasks, every protocol run, the
    recipe's paper tables first when it configures any, their ``train.variants`` cells from
    ``variants``); with both checkpoints, also their learning curve (the figure the
    ``learning_curve`` output saves)."""
    s = params_of(EvaluateParams, params)
    tables = paper_tables.build_tables(combine_metrics(binary, semantic, variants), s.paper_tables)
    curve = None
    if detector_binary is not None and detector_semantic is not None:
        curve = learning_curve_figure(detector_binary, detector_semantic)
    try:
        return report.render_report({"binary": binary, "semantic": semantic},
                                    {"binary": examples_binary, "semantic": examples_semantic},
                                    title=s.report.title, paper_tables=tables, learning_curve=curve)
    finally:
        if curve is not None:
            plt.close(curve)


def render_paper_tables(metrics: dict[str, Any], params: dict[str, Any]) -> str:
    """``paper_tables.md``: the recipe's tables (``evaluate.paper_tables``) in the papers' layouts,
    ours beside the published number, read from the combined metrics.json document."""
    return paper_tables.markdown(paper_tables.build_tables(metrics, params_of(EvaluateParams, params).paper_tables))


def build_comparison(binary: dict[str, Any], semantic: dict[str, Any], params: dict[str, Any]) -> str:
    """Side-by-side HTML page: binary vs semantic, each clean and under each robustness condition."""
    title = params_of(EvaluateParams, params).report.title
    runs = {}
    for task, metrics in (("binary", binary), ("semantic", semantic)):
        if metrics.get("unsupported_task"):
            continue
        runs.update(report.runs_of(metrics, prefix=f"{task} / {metrics.get('model')}"))
    return report.render_comparison(runs, title=f"{title}: comparison")


def _headline(summary: dict[str, Any]) -> str:
    pixel, image = summary.get("pixel") or {}, summary.get("image") or {}
    return (f"pixel acc {_or_nan(pixel.get('accuracy')):.3f}, mIoU {_or_nan(pixel.get('miou')):.3f}, "
            f"bF1 {_or_nan(pixel.get('boundary_f1')):.3f}, image acc {_or_nan(image.get('accuracy')):.3f}, "
            f"AP {_or_nan(image.get('average_precision')):.3f}")


def _log_summary(metrics: dict[str, Any]) -> None:
    logger.info("%s task (%s): %s; bF1 tolerance %s px; protocols %s", metrics["task"], metrics["model"],
                _headline(metrics["protocols"]["in_domain"]), metrics["conventions"]["boundary_tolerance_px"],
                sorted(metrics["protocols"]))


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
