"""Filter: score every edited image with the configured quality scorers and mark the ones that
fail a threshold. Dropped samples stay in the table with the reason; nothing is deleted.

Seeds: BR-Gen drops BRISQUE > 60 and removes outliers by CLIP text-image score and by similarity
to the original (DreamSim there; an LPIPS-style distance here, see models.quality.perceptual);
DiffSeg30k drops VLM ratings below 3. A scorer that needs the edit prompt gets the sample's
prompts (one per turn, from ``provenance``); one that needs a reference gets the base image.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.cache import ModelCache
from models.quality import create_quality_scorer
from models.quality.checks import applies, threshold_failures, validate_checks
from pipelines.contract.params import FilterParams, params_of
from pipelines.io.resumable import resumable_map
from pipelines.io.resume import WorkStore, fingerprint, normalise, result_params
from pipelines.io.shards import in_shard, parse_shard

logger = logging.getLogger(__name__)

# Samples whose `origin` is one of these were made by this project and are scored; imported
# published samples (origin = the format's name) were filtered by their authors.
GENERATED_ORIGINS = ("", "generated")


def _prompts_by_sample(provenance: pd.DataFrame | None) -> dict[str, list[str]]:
    if provenance is None or provenance.empty or "prompt" not in provenance:
        return {}
    ordered = provenance.sort_values(["sample_id", "turn"])
    return {sid: [p for p in group["prompt"] if isinstance(p, str) and p] for sid, group in ordered.groupby("sample_id")}


def _generators_of(row: Any) -> list[str]:
    """The generators of a samples-table row, in turn order (its last one when the list is absent)."""
    generators = getattr(row, "generators", None)
    if generators is not None and len(generators):
        return [str(g) for g in generators]
    last = getattr(row, "last_generator", "")
    return [last] if isinstance(last, str) and last else []


class _Scoring:
    """The configured checks' scorers and what they need: prompts per sample, the base image."""

    def __init__(self, params: FilterParams, models: ModelCache, provenance: pd.DataFrame | None,
                 base_images: dict[str, Callable[[], np.ndarray]] | None):
        self.rules = list(params.checks)
        validate_checks(self.rules)
        self._generators = {rule.get("name", rule["scorer"]): rule for rule in self.rules}
        self.scorers = {rule.get("name", rule["scorer"]): _scorer(models, rule["scorer"], rule.get("kwargs") or {})
                        for rule in self.rules}
        needs_prompt = any("prompt" in s.needs for s in self.scorers.values())
        self.prompts = _prompts_by_sample(provenance) if needs_prompt else {}
        self.base_images = base_images
        self._base: dict[str, np.ndarray] = {}

    def reference(self, base_id: str) -> np.ndarray:
        if base_id not in self._base:
            if self.base_images is None or base_id not in self.base_images:
                raise ValueError(f"no base image {base_id!r} to compare with")
            self._base.clear()  # samples come grouped by base; keep one base in memory
            self._base[base_id] = self.base_images[base_id]()
        return self._base[base_id]

    def score(self, row: Any, image: np.ndarray) -> dict[str, Any]:
        """{scores: name -> score (NaN when unscorable), reasons: [...]} for one sample."""
        scores, reasons = {}, []
        for name, scorer in self.scorers.items():
            if not applies(self._generators[name], _generators_of(row)):
                scores[name] = float("nan")  # BR-Gen: CLIP for prompt-based outputs only
                continue
            try:
                context: dict[str, Any] = {}
                if "prompt" in scorer.needs:
                    context["prompt"] = self.prompts.get(row.sample_id) or [getattr(row, "prompt", "")]
                if "reference" in scorer.needs:
                    context["reference"] = self.reference(row.base_id)
                scores[name] = float(scorer.score(image, **context))
            except ValueError as exc:  # e.g. a flat image has no natural-scene statistics
                logger.warning("%s: %s could not score it: %s", row.sample_id, name, exc)
                scores[name] = float("nan")
                reasons.append(f"{name} unscorable: {exc}")
        return {"scores": scores, "reasons": reasons}


def run_scoring(
    edited_images: dict[str, Callable[[], np.ndarray]],
    samples: pd.DataFrame,
    provenance: pd.DataFrame | None,
    base_images: dict[str, Callable[[], np.ndarray]] | None,
    params: dict[str, Any],
    model_cache: ModelCache,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Score every generated sample (of ``shard``) with every check; resumable per sample
    (``work_dir``). Imported published samples are not scored unless ``score_imported``.

    Returns (the samples scored, in table order; sample_id -> {scores, reasons}; the checks as the
    report lists them: name, scorer, min, max, higher_is_better, valid_range)."""
    typed = params_of(FilterParams, params)
    shard = parse_shard(typed.shard)
    if shard is not None:
        # a boolean array, not a list: an empty list would select no columns of an empty shard
        samples = samples[np.array([in_shard(b, shard) for b in samples["base_id"]], dtype=bool)].reset_index(drop=True)
    scoring = _Scoring(typed, model_cache, provenance, base_images)
    store = WorkStore(typed.work_dir, typed.work_storage_options)
    settings = result_params(params)
    score_imported = typed.score_imported
    origins = samples["origin"].fillna("").astype(str) if "origin" in samples else pd.Series([""] * len(samples))

    def items():
        rows = list(samples.itertuples(index=False))
        for i, row in enumerate(tqdm(rows, desc="filter", unit="image")):
            if not score_imported and origins.iloc[i] not in GENERATED_ORIGINS:
                continue
            image = edited_images[row.sample_id]()
            fp = fingerprint(settings, normalise(row._asdict()), scoring.prompts.get(row.sample_id), image) \
                if store.enabled else ""
            yield row.sample_id, fp, (row, image)

    def compute(block):
        for key, (row, image) in block:
            yield key, {}, scoring.score(row, image)

    results = resumable_map(store, items(), compute)
    checks = [{
        "name": name, "scorer": rule["scorer"], "min": rule.get("min"), "max": rule.get("max"),
        "generators": rule.get("generators"), "higher_is_better": scoring.scorers[name].higher_is_better,
        "valid_range": [None if not np.isfinite(v) else float(v) for v in scoring.scorers[name].valid_range],
    } for rule, name in ((r, r.get("name", r["scorer"])) for r in scoring.rules)]
    return samples, {key: result.data for key, result in results.items()}, checks


def apply_thresholds(samples: pd.DataFrame, scores: dict[str, dict[str, Any]],
                     checks: list[dict[str, Any]]) -> pd.DataFrame:
    """``samples`` plus one ``quality_<name>`` column per check (NaN: unscored / unscorable), then
    ``drop_reason`` ('' when kept; e.g. 'brisque 63.1 > 60') and ``kept`` (bool)."""
    table = samples.copy()
    nan = float("nan")
    reasons = [list(scores.get(sid, {}).get("reasons", [])) for sid in table["sample_id"]]
    for check in checks:
        name = check["name"]
        table[f"quality_{name}"] = [float(scores[sid]["scores"][name]) if sid in scores else nan
                                    for sid in table["sample_id"]]
    for check in checks:
        name = check["name"]
        for i, value in enumerate(np.asarray(table[f"quality_{name}"], dtype=float)):
            if np.isnan(value):
                continue  # unscorable (recorded) or imported (not scored)
            reasons[i] += threshold_failures(name, value, check["min"], check["max"])
    table["drop_reason"] = ["; ".join(r) for r in reasons]
    table["kept"] = table["drop_reason"] == ""
    dropped = table[~table["kept"]]
    logger.info("filter kept %d of %d samples; dropped per last generator: %s", int(table["kept"].sum()),
                len(table), dropped["last_generator"].value_counts().to_dict() if "last_generator" in table else {})
    return table


def _scorer(models: ModelCache, name: str, kwargs: dict[str, Any]) -> Any:
    """Quality scorer ``name`` from ``models``: shard tasks in one worker process share it (CLIP,
    VLM, perceptual models load once per process, not once per shard)."""
    return models.get(ModelCache.key("quality", name, kwargs), lambda: create_quality_scorer(name, **kwargs))


def _reason_key(reason: str) -> str:
    """'brisque 63.1 > 60' -> 'brisque > 60'; 'vlm unscorable: ...' -> 'vlm unscorable'."""
    head, _, _ = reason.partition(":")
    parts = head.split()
    if len(parts) == 4 and parts[2] in (">", "<"):
        return f"{parts[0]} {parts[2]} {parts[3]}"
    return head.strip()


def summarise_filter(table: pd.DataFrame, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Kept / dropped counts overall, per generator (a sample counts once for every generator that
    edited it), per last generator, per edit type (once per type in the sample) and per reason."""
    def counts(keys_per_row: list[list[str]]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for keys, kept in zip(keys_per_row, table["kept"]):
            for key in dict.fromkeys(keys):
                entry = out.setdefault(key, {"kept": 0, "dropped": 0})
                entry["kept" if kept else "dropped"] += 1
        return dict(sorted(out.items()))

    n = len(table)
    n_kept = int(table["kept"].sum()) if n else 0
    reasons = Counter(_reason_key(r) for text in table.loc[~table["kept"], "drop_reason"] for r in str(text).split("; ") if r)
    imported = 0
    if "origin" in table and checks:
        imported = int((~table["origin"].fillna("").isin(GENERATED_ORIGINS)).sum())
    return {
        "n_samples": n, "n_kept": n_kept, "n_dropped": n - n_kept,
        "removal_rate": (n - n_kept) / n if n else 0.0,
        "checks": checks,
        "per_generator": counts(list(table["generators"]) if "generators" in table else [[]] * n),
        "per_last_generator": counts([[g] if isinstance(g, str) and g else [] for g in table.get("last_generator", pd.Series([""] * n))]),
        "per_edit_type": counts(list(table["edit_types"]) if "edit_types" in table else [[]] * n),
        "per_reason": dict(sorted(reasons.items())),
        "imported_unscored": imported,
    }


def regeneration_summary(table: pd.DataFrame, provenance: pd.DataFrame | None,
                         target_per_generator: int | None) -> dict[str, Any]:
    """BR-Gen's "generate until enough pass" bookkeeping, per generator (a sample counts for each
    generator it used): samples, kept, regenerated (samples that took more than one attempt),
    mean attempts (``attempts`` in the last turn's provenance details, 1 when absent) and, with
    ``target_per_generator``, the target and the shortfall ``max(0, target - kept)``."""
    attempts: dict[str, int] = {}
    if provenance is not None and len(provenance) and "details" in provenance:
        last = provenance.sort_values(["sample_id", "turn"]).groupby("sample_id").tail(1)
        for sid, details in zip(last["sample_id"], last["details"]):
            parsed = json.loads(details) if isinstance(details, str) and details else {}
            attempts[sid] = int(parsed.get("attempts", 1))
    out: dict[str, Any] = {"target_per_generator": target_per_generator, "per_generator": {}}
    for row in table.itertuples(index=False):
        for name in dict.fromkeys(_generators_of(row)):
            entry = out["per_generator"].setdefault(name, {"samples": 0, "kept": 0, "regenerated": 0, "attempts": 0})
            tries = attempts.get(row.sample_id, 1)
            entry["samples"] += 1
            entry["kept"] += int(bool(row.kept))
            entry["regenerated"] += int(tries > 1)
            entry["attempts"] += tries
    for entry in out["per_generator"].values():
        entry["mean_attempts"] = entry.pop("attempts") / entry["samples"]
        if target_per_generator is not None:
            entry["target"] = target_per_generator
            entry["shortfall"] = max(0, target_per_generator - entry["kept"])
    out["per_generator"] = dict(sorted(out["per_generator"].items()))
    return out


def assemble_filter(samples: pd.DataFrame, scores: dict[str, dict[str, Any]], checks: list[dict[str, Any]],
                    provenance: pd.DataFrame | None = None,
                    params: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The filter stage's last node: (filtered_samples: ``apply_thresholds``, filter_report:
    ``summarise_filter`` plus, when ``target_per_generator`` is set or a sample was regenerated,
    ``regeneration``: ``regeneration_summary``), logged. A generator whose kept count falls short
    of ``filter.target_per_generator`` is logged as a warning."""
    table = apply_thresholds(samples, scores, checks)
    report = summarise_filter(table, checks)
    target = params_of(FilterParams, params).target_per_generator
    regeneration = regeneration_summary(table, provenance, target)
    if target is not None or any(e["regenerated"] for e in regeneration["per_generator"].values()):
        report["regeneration"] = regeneration  # only where a recipe asks for it: the default report is unchanged
    short = {name: e["shortfall"] for name, e in regeneration["per_generator"].items() if e.get("shortfall")}
    if short:
        logger.warning("filter: kept samples short of target_per_generator=%s: %s", target, short)
    logger.info("filter report: removal rate %.2f; per reason %s", report["removal_rate"], report["per_reason"])
    return table, report
