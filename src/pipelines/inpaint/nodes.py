"""Inpaint: apply each sample's 1-3 region edits, one random generator per turn, and record
the pixel label map (which generator last touched each pixel) and per-turn provenance.

The configured generator list (``globals.generators``) is the label space. Each entry is
``{name, generator, label, task, kwargs}``: ``name`` is what provenance records, ``generator``
the registry key (default: name), ``label`` the class it counts as (default: name; a LoRA
variant names its parent, as in DiffSeg30k's LoRA study), ``task`` is ``inpaint`` (default) or
``text-to-image`` (full-synthesis samples, OpenSDI). The classes are the distinct labels in
order of first appearance: label k in a label map is ``generator_names(...)[k - 1]``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.generators import (
    EditSession,
    EditSpec,
    build_clip_candidate_scorer,
    create_generator,
    create_text_to_image,
    set_max_loaded,
    set_max_resident,
)
from models.cache import ModelCache
from models.perception import Region, VLMParseError, create_vlm, make_edit_prompt
from models.quality.checks import QualityGate
from pipelines.contract.ids import sample_rng
from pipelines.contract.labels import generator_entries, generator_labels
from pipelines.contract.params import InpaintParams, params_of
from pipelines.contract.schemas import PROVENANCE_COLUMNS, table
from pipelines.contract.ids import full_synthesis_id, model_sample_id, pool_of
from pipelines.io.resumable import ItemResult, resumable_map
from pipelines.io.resume import WorkStore, fingerprint, normalise, result_params
from pipelines.io.shards import in_shard, parse_shard

logger = logging.getLogger(__name__)

FULL_SYNTHESIS = "full_synthesis"
# Part of every stored result's fingerprint: results saved when list columns were comma-joined
# strings, or before provenance had prompt_source / prompt_image, are recomputed instead of resumed
# into a table whose schema they no longer fit.
ROW_FORMAT = "rows: list columns, prompt provenance"


def build_generators(generators: Sequence[dict[str, Any] | str]) -> dict[str, Any]:
    """One instance per configured entry: an inpainter (``create_generator``) or, for
    ``task: text-to-image``, a text-to-image generator (``create_text_to_image``)."""
    built = {}
    for entry in generator_entries(generators):
        factory = create_generator if entry["task"] == "inpaint" else create_text_to_image
        built[entry["name"]] = factory(entry["generator"], **entry["kwargs"])
    return built


def draw_generators(rng: np.random.Generator, names: list[str], turns: int, distinct: bool,
                    weights: list[float] | None = None) -> list[str]:
    """Generators for each turn; DiffSeg30k uses a different random model for every turn. ``weights``
    (one per name; None = uniform, drawn as before) make some entries rarer (OpenSDI's classic edits)."""
    if weights is not None and len(set(weights)) > 1:
        p = np.asarray(weights, dtype=float) / float(np.sum(weights))
        replace = not (distinct and turns <= int((p > 0).sum()))
        return [names[i] for i in rng.choice(len(names), size=turns, replace=replace, p=p)]
    if distinct and turns <= len(names):
        return [names[i] for i in rng.choice(len(names), size=turns, replace=False)]
    return [names[i] for i in rng.integers(0, len(names), size=turns)]


def _candidate_scorer(params: InpaintParams) -> tuple[int, Callable | None]:
    candidates = params.candidates_per_edit
    if candidates < 1:
        raise ValueError(f"inpaint.candidates_per_edit must be >= 1, got {candidates}")
    if candidates == 1:
        return 1, None
    if not params.clip_model:
        raise ValueError("inpaint.candidates_per_edit > 1 needs inpaint.clip_model (a CLIP checkpoint) to choose")
    scorer = build_clip_candidate_scorer(params.clip_model, device=params.clip_device, dtype=params.clip_dtype,
                                         region=params.clip_region)
    return candidates, scorer


def _provenance_row(sample_id: str, kind: str, record: dict[str, Any], prompted: tuple[str, str] = ("", ""),
                    instruction: str = "") -> dict[str, Any]:
    """One provenance row; ``instruction``: an OpenSDI "add" turn's instruction (perceive's
    ``description``, "add a red bicycle next to the bench"), kept in ``details``."""
    row = {"sample_id": sample_id, "kind": kind, **{k: record[k] for k in PROVENANCE_COLUMNS if k in record}}
    row["prompt_source"], row["prompt_image"] = prompted
    row["candidate_seeds"] = [int(s) for s in record.get("candidate_seeds") or []]
    # rounded as the table always recorded them (a score, not an exact value to reproduce)
    row["candidate_scores"] = [round(float(s), 4) for s in record.get("candidate_scores") or []]
    details = {**(record.get("details") or {}), **({"instruction": instruction} if instruction else {})}
    row["details"] = json.dumps(details, sort_keys=True)
    return row


def sample_turns(regions: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """sample_id -> its region rows as dicts in turn order, samples sorted by id. One pass over the
    table (a pandas group per sample costs ~1 ms each in ``itertuples`` / ``to_dict`` alone)."""
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for row in regions.sort_values(["sample_id", "turn"]).to_dict("records"):
        by_sample.setdefault(row["sample_id"], []).append(row)
    return by_sample


def _caption(manifest: pd.DataFrame, base_id: str, fallback: str) -> str:
    caption = manifest.at[base_id, "caption"] if "caption" in manifest.columns else ""
    return caption if isinstance(caption, str) and caption.strip() else fallback


def plan_edits(regions: pd.DataFrame, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every random choice of the edits, drawn per sample up front (so the order the work is done
    in changes nothing): [{sample_id, base_id, turns (region rows in turn order), generators
    (one inpainting entry name per turn), seeds (one per turn)}], samples sorted by id, only the
    ones in ``shard``. DiffSeg30k: a different random generator per turn
    (``distinct_generators_per_sample``)."""
    params = params_of(InpaintParams, params)
    seed = params.seed
    entries = generator_entries(params.generators)
    drawable = [e for e in entries if e["task"] == "inpaint" and e["name"] not in params.study_only]
    by_turn = sample_turns(regions)
    classic = classic_schedule(by_turn, drawable, params)
    drawable = [e for e in drawable if e["name"] not in classic.names]
    inpainters = [e["name"] for e in drawable]
    weights = [e["weight"] for e in drawable]
    _check_study(params, entries)
    if len(regions) and not inpainters:
        raise ValueError("no inpainting generator configured (every entry has task: text-to-image, is study_only "
                         "or is a classic edit of inpaint.classic_intervals)")
    shard = parse_shard(params.shard)
    distinct = params.distinct_generators_per_sample
    plan = []
    for sample_id, turns in by_turn.items():
        if not in_shard(turns[0]["base_id"], shard):
            continue
        if params.every_generator:
            plan += plan_every_generator(seed, sample_id, turns, inpainters)
            continue
        rng = sample_rng(seed, f"inpaint:{sample_id}")
        chosen = draw_generators(rng, inpainters, len(turns), distinct, weights)
        chosen = [classic.slots.get((sample_id, t), name) for t, name in enumerate(chosen)]
        seeds = [int(rng.integers(0, 2**31 - 1)) for _ in chosen]
        plan.append({"sample_id": sample_id, "base_id": turns[0]["base_id"], "turns": turns,
                     "generators": chosen, "seeds": seeds})
        plan += reedit_twins(plan[-1], params.reedit)
    return plan


@dataclasses.dataclass(frozen=True)
class ClassicSchedule:
    """Where the classic edits go: ``names`` of the classic entries (never drawn per turn) and
    ``slots`` {(sample_id, turn index): entry name}. Empty when ``classic_intervals`` is off."""
    names: frozenset[str] = frozenset()
    slots: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)


def interval_slots(n_edits: int, gap: Sequence[int], rng: np.random.Generator) -> list[int]:
    """Positions (0-based, increasing) of the classic edits among ``n_edits`` edits: k diffusion
    edits, one classic edit, k' diffusion edits, one classic edit, ..., each k ~ U{gap[0]..gap[1]}
    drawn from ``rng``. The gaps between consecutive positions are k' + 1."""
    slots, position = [], 0
    while True:
        position += int(rng.integers(int(gap[0]), int(gap[1]) + 1))
        if position >= n_edits:
            return slots
        slots.append(position)
        position += 1


def classic_schedule(by_turn: dict[str, list[dict[str, Any]]], drawable: list[dict[str, Any]],
                     params: InpaintParams) -> ClassicSchedule:
    """OpenSDI section 3: copy-paste and splicing "applied at random intervals"
    (``inpaint.classic_intervals``). The edits are every turn of every sample in sample-id order,
    all shards included (so shards agree); ``interval_slots`` places the classic edits among them
    with one rng per run seed, and each slot gets a classic entry (those whose registry key is in
    ``classic_intervals.generators``) drawn by ``weight`` from the same rng. The other turns draw
    among the other entries as before, so a classic slot replaces what its turn would have drawn.

    Raises:
        ValueError: a bad gap, no classic entry configured, or ``every_generator`` also set.
    """
    config = params.classic_intervals
    if config is None:
        return ClassicSchedule()
    low, high = (int(v) for v in config.gap) if len(config.gap) == 2 else (-1, -1)
    if not 0 <= low <= high:
        raise ValueError(f"inpaint.classic_intervals.gap must be [low, high] with 0 <= low <= high, got {config.gap}")
    if params.every_generator:
        raise ValueError("inpaint.classic_intervals and inpaint.every_generator exclude each other")
    entries = [e for e in drawable if e["generator"] in config.generators]
    if not entries:
        raise ValueError(f"inpaint.classic_intervals: no generator entry runs {config.generators}")
    turns = [(sample_id, t) for sample_id, rows in by_turn.items() for t in range(len(rows))]
    rng = sample_rng(params.seed, "classic-intervals")
    p = np.array([e["weight"] for e in entries], dtype=float)
    slots = {}
    for position in interval_slots(len(turns), (low, high), rng):
        slots[turns[position]] = entries[int(rng.choice(len(entries), p=p / p.sum()))]["name"]
    return ClassicSchedule(frozenset(e["name"] for e in entries), slots)


def plan_every_generator(seed: int, sample_id: str, turns: list[dict[str, Any]],
                         inpainters: list[str]) -> list[dict[str, Any]]:
    """BR-Gen: the perceived sample's region(s) inpainted by EVERY inpainter, one sample each
    (``model_sample_id``), every turn by that model, seeds drawn per model sample. The samples
    share the base (so its group and split), keeping each (real, mask, forged) triplet in one split."""
    plan = []
    for name in inpainters:
        sid = model_sample_id(sample_id, name)
        rng = sample_rng(seed, f"inpaint:{sid}")
        plan.append({"sample_id": sid, "base_id": turns[0]["base_id"], "turns": turns, "generators": [name] * len(turns),
                     "seeds": [int(rng.integers(0, 2**31 - 1)) for _ in turns]})
    return plan


def _check_study(params: InpaintParams, entries: list[dict[str, Any]]) -> None:
    """``study_only`` and ``reedit`` name inpainting entries; a re-edit variant is study_only."""
    known = {e["name"] for e in entries if e["task"] == "inpaint"}
    named = [*params.study_only, *params.reedit, *params.reedit.values()]
    unknown = sorted({n for n in named if n not in known})
    if unknown:
        raise ValueError(f"inpaint.study_only / inpaint.reedit name {unknown}, not inpainting entries of the "
                         f"generator list {sorted(known)}")
    drawn = sorted(set(params.reedit) - set(params.study_only))
    if drawn:
        raise ValueError(f"inpaint.reedit variants {drawn} must also be in inpaint.study_only (never drawn for samples)")


def reedit_twins(sample: dict[str, Any], reedit: dict[str, str]) -> list[dict[str, Any]]:
    """DiffSeg30k Table 4: for each {variant: parent} with a parent turn in ``sample``, a twin
    ``<sample_id>+<variant>`` with the same regions, prompts, seeds and other generators, whose
    parent turns are redone by the variant (the twin's label maps count them as the variant's
    ``label``, the parent's class). Twins share the base, so they land in the original's split."""
    twins = []
    for variant, parent in reedit.items():
        if parent in sample["generators"]:
            twins.append({**sample, "sample_id": f"{sample['sample_id']}+{variant}", "reedit_of": sample["sample_id"],
                          "generators": [variant if g == parent else g for g in sample["generators"]]})
    return twins


def plan_full_synthesis(base_manifest: pd.DataFrame, params: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenSDI's wholly generated samples: a fraction ``full_synthesis.ratio`` of the bases (drawn
    per base) gets one sample ``<base_id>-full`` from a random ``text-to-image`` entry, prompted
    with the base's caption (else ``full_synthesis.prompt``). [{sample_id, base_id, generator,
    prompt, seed}] in base order; only bases in ``shard``."""
    params = params_of(InpaintParams, params)
    synthesis = params.full_synthesis
    ratio = synthesis.ratio
    synthesizers = [e["name"] for e in generator_entries(params.generators) if e["task"] == "text-to-image"]
    if ratio > 0 and not synthesizers:
        raise ValueError("inpaint.full_synthesis.ratio > 0 needs a generator entry with task: text-to-image")
    if ratio <= 0:
        return []
    seed, shard = params.seed, parse_shard(params.shard)
    manifest = base_manifest.set_index("base_id")
    plan = []
    for base_id in sorted(b for b in manifest.index if pool_of(b) is None):  # pool photos stay real-only
        rng = sample_rng(seed, f"synthesis:{base_id}")
        if rng.random() >= ratio or not in_shard(base_id, shard):
            continue
        name = synthesizers[int(rng.integers(0, len(synthesizers)))]
        prompt = _caption(manifest, base_id, synthesis.prompt)
        plan.append({"sample_id": full_synthesis_id(base_id), "base_id": base_id, "generator": name,
                     "prompt": prompt, "seed": int(rng.integers(0, 2**31 - 1))})
    return plan


def _base_key(manifest: pd.DataFrame, base_id: str) -> str:
    """What a sample's fingerprint records of its base: the pixels' sha256 (the id if unknown)."""
    return manifest.at[base_id, "sha256"] if "sha256" in manifest.columns else base_id


def _sample_row(plan: dict[str, Any], manifest: pd.DataFrame, **values: Any) -> dict[str, Any]:
    base_id = plan["base_id"]
    return normalise({"sample_id": plan["sample_id"], "base_id": base_id, "group_id": manifest.at[base_id, "group_id"],
                      "base_kind": manifest.at[base_id, "kind"], **values})


class PromptWriter:
    """DiffSeg30k sec. 3.1, stage 2: "the edited image can form a new pair with the remaining object
    masks, repeating the prompt generation": turn k >= 2 of a sample gets its prompt from the VLM
    that wrote the region's prompt in perceive (``prompt_source`` ``vlm:<name>``, looked up in
    ``inpaint.prompt_vlms``), shown the image as edited by turns < k. Turn 1, template prompts and
    VLMs not configured here keep perceive's prompt (written from the base image).

    ``prompt(...)`` returns (the edit with its prompt, prompt_source, prompt_image): the image the
    VLM was shown ("base image" or "turn <k-1> output"; "" for a template prompt). An unreadable
    answer falls back to the template prompt, as perceive does (``...:parse_failed->template``).
    Every draw depends on (seed, region_id) only, so chunks, shards and resumes change nothing.
    """

    def __init__(self, entries: list[dict[str, Any]], models: ModelCache | None, seed: int):
        models = models if models is not None else ModelCache()
        self.seed = seed
        # the same cache key as perceive's adapters, so a process loads each VLM once
        self.vlms = {e["name"]: models.get(ModelCache.key("vlm", e.get("vlm", e["name"]), e.get("kwargs")),
                                           lambda e=e: create_vlm(e.get("vlm", e["name"]), **(e.get("kwargs") or {})))
                     for e in entries}

    def prompt(self, turn_index: int, image: np.ndarray, row: dict[str, Any], edit: EditSpec) -> tuple[EditSpec, str, str]:
        source = str(row.get("prompt_source") or "")
        name = source.split(":")[1] if source.startswith("vlm:") else None
        if turn_index == 0 or name not in self.vlms:
            return edit, source, "base image" if name else ""
        region = Region(mask=edit.mask, label=str(row["label"]), kind=str(row["kind"]), score=float(row["score"]),
                        source=str(row.get("perceiver") or ""))
        rng = sample_rng(self.seed, f"reprompt:{edit.region_id}")
        shown = f"turn {turn_index} output"
        try:
            text = self.vlms[name].edit_prompt(image, region, edit.edit_type, seed=int(rng.integers(0, 2**31 - 1)))
            return dataclasses.replace(edit, prompt=text), f"vlm:{name}", shown
        except VLMParseError as error:
            logger.info("%s: %s; template prompt", edit.region_id, error)
            prompt = make_edit_prompt(region, edit.edit_type, rng)
            return dataclasses.replace(edit, prompt=prompt), f"vlm:{name}:parse_failed->template", shown


def _edit_sessions(block, base_images, generators, label_index, candidates, scorer, progress, writer=None):
    """Run one block of samples (a chunk): turn t of every sample grouped by generator, so a model
    is used for all its edits in a row (one load / device move per chunk, not per sample); with a
    ``writer`` (``PromptWriter``) turn t's prompt is written from the sample's image after t - 1.
    Yields (plan, image, label_map, provenance records, [(prompt_source, prompt_image)] per turn)."""
    sessions = {plan["sample_id"]: EditSession(base_images[plan["base_id"]](), generators, label_index,
                                               candidates=candidates, score_candidate=scorer)
                for plan, _ in block}
    donor_users = [g for g in generators.values() if hasattr(g, "use_donors")]
    inpainters = list(dict.fromkeys(name for _, edits in block for name in (e.generator for e in edits)))
    order = [name for name in generators if name in inpainters]
    prompted: dict[str, list[tuple[str, str]]] = {plan["sample_id"]: [] for plan, _ in block}
    for turn in range(max(len(edits) for _, edits in block)):
        for name in order:
            for plan, edits in block:
                if turn < len(edits) and edits[turn].generator == name:
                    for generator in donor_users:  # splicing: any other base image may be the donor
                        generator.use_donors(base_images, exclude=plan["base_id"])
                    session, edit, row = sessions[plan["sample_id"]], edits[turn], plan["turns"][turn]
                    written = str(row.get("prompt_source") or "")
                    source = (written, "base image" if written.startswith("vlm:") else "")
                    if writer is not None:
                        edit, *source = writer.prompt(turn, session.image, row, edit)
                    prompted[plan["sample_id"]].append(tuple(source))
                    session.apply(edit)
                    progress.update()
    for plan, edits in block:
        yield (plan, *sessions.pop(plan["sample_id"]).finish(), prompted.pop(plan["sample_id"]))


class _Regeneration:
    """BR-Gen section 3.2.3: an edited sample failing a quality check (``regenerate.checks``, the
    filter's entries) is made again with new seeds, at most ``regenerate.max_attempts`` tries in
    all; a sample whose generators ignore the seed (LaMa) is not retried. The kept try's last
    provenance record notes ``attempts``, ``passed`` and the failures before it in ``details``;
    the filter stage scores the final image again and reports the shortfall."""

    def __init__(self, params: InpaintParams, generators: dict[str, Any], label_index: dict[str, int],
                 candidates: int, scorer: Callable | None):
        self.seed, self.max_attempts = params.seed, params.regenerate.max_attempts
        checks = params.regenerate.checks
        self.gate = QualityGate(checks) if self.max_attempts > 1 and checks else None
        self.generators = generators
        self.session_args = (generators, label_index, candidates, scorer)

    def _failures(self, image, base, edits: list[EditSpec]) -> list[str]:
        try:
            scores = self.gate.scores(image, generators=[e.generator for e in edits], reference=base,
                                      prompts=[e.prompt for e in edits if e.prompt])
        except ValueError as error:  # unscorable: the filter would drop it too
            return [f"unscorable: {error}"]
        return self.gate.failures(scores)

    def run(self, sample_id: str, edits: list[EditSpec], base: np.ndarray, image: np.ndarray,
            label_map: np.ndarray, provenance: list[dict[str, Any]]):
        """(image, label_map, provenance) of the first try that passes, else of the last try."""
        if self.gate is None:
            return image, label_map, provenance
        # the prompts the turns were run with (a prompt writer may have rewritten perceive's)
        edits = [dataclasses.replace(edit, prompt=record["prompt"]) for edit, record in zip(edits, provenance)]
        attempt, failed = 1, []
        failures = self._failures(image, base, edits)
        # a deterministic inpainter (LaMa, OpenCV) gives the same picture for every seed
        seeded = any(getattr(self.generators[e.generator], "uses_seed", True) for e in edits)
        while failures and seeded and attempt < self.max_attempts:
            failed.append(failures)
            attempt += 1
            rng = sample_rng(self.seed, f"inpaint:{sample_id}:attempt{attempt}")
            session = EditSession(base, *self.session_args)
            for edit in edits:
                session.apply(dataclasses.replace(edit, seed=int(rng.integers(0, 2**31 - 1))))
            image, label_map, provenance = session.finish()
            failures = self._failures(image, base, edits)
        provenance[-1]["details"] = {**(provenance[-1].get("details") or {}), "attempts": attempt,
                                     "failed_attempts": failed, "passed": not failures}
        return image, label_map, provenance


def run_edits(
    plan: list[dict[str, Any]],
    base_images: dict[str, Callable[[], np.ndarray]],
    base_manifest: pd.DataFrame,
    region_masks: dict[str, Callable[[], np.ndarray]],
    params: dict[str, Any],
    model_cache: ModelCache | None = None,
) -> dict[str, ItemResult]:
    """Apply every planned sample's edits (``EditSession``), ``chunk_size`` samples at a time;
    samples already complete in the work store (``work_dir``) are loaded, not redone. With
    ``prompt_vlms`` later turns are re-prompted on the edited image (``PromptWriter``; its VLMs
    from ``model_cache``); provenance's ``prompt_source`` / ``prompt_image`` say who wrote each
    prompt from which image.

    Returns sample_id -> ItemResult(arrays {image (H,W,3) uint8, label_map (H,W) uint8: 0 =
    untouched, k = the class label of the LAST generator that edited the pixel}, data {sample
    row, provenance rows}). Pixels outside every edited region are bit-identical to the base image.
    """
    typed = params_of(InpaintParams, params)
    entries = generator_entries(typed.generators)
    set_max_resident(typed.max_pipelines_on_device)
    set_max_loaded(typed.max_pipelines_loaded)
    generators = build_generators([e for e in entries if e["task"] == "inpaint"])
    label_index = generator_labels(entries)
    candidates, scorer = _candidate_scorer(typed)
    regeneration = _Regeneration(typed, generators, label_index, candidates, scorer)
    writer = PromptWriter(typed.prompt_vlms, model_cache, typed.seed) if typed.prompt_vlms else None
    manifest = base_manifest.set_index("base_id")
    store = WorkStore(typed.work_dir, typed.work_storage_options)
    settings = result_params(params)
    progress = tqdm(total=sum(len(p["turns"]) for p in plan), desc="inpaint", unit="edit")

    def items():
        for sample in plan:
            edits = [EditSpec(generator=gen, mask=region_masks[row["region_id"]]() > 127, prompt=row["prompt"],
                              edit_type=row["edit_type"], seed=seed, region_id=row["region_id"])
                     for gen, seed, row in zip(sample["generators"], sample["seeds"], sample["turns"])]
            fp = fingerprint(settings, ROW_FORMAT, sample["sample_id"], _base_key(manifest, sample["base_id"]),
                             normalise(sample["turns"]), *[e.mask for e in edits]) if store.enabled else ""
            yield sample["sample_id"], fp, (sample, edits)

    def compute(block):
        payloads = [payload for _, payload in block]
        edits_of = {sample["sample_id"]: edits for sample, edits in payloads}
        for sample, image, label_map, provenance, prompted in _edit_sessions(
                payloads, base_images, generators, label_index, candidates, scorer, progress, writer):
            if regeneration.gate is not None:
                image, label_map, provenance = regeneration.run(
                    sample["sample_id"], edits_of[sample["sample_id"]], base_images[sample["base_id"]](), image,
                    label_map, provenance)
            turns = sample["turns"]
            kinds = {row["region_id"]: row["kind"] for row in turns}
            added = {row["region_id"]: row.get("description") or "" for row in turns if row["edit_type"] == "add"}
            row = _sample_row(sample, manifest, n_turns=len(turns), generators=list(sample["generators"]),
                              last_generator=sample["generators"][-1], edited_area_ratio=float((label_map > 0).mean()),
                              edit_types=[r["edit_type"] for r in turns],
                              region_kinds=[r["kind"] for r in turns])
            rows = normalise([_provenance_row(sample["sample_id"], kinds.get(r["region_id"], ""), r, p,
                                              added.get(r["region_id"], ""))
                              for r, p in zip(provenance, prompted)])
            yield sample["sample_id"], {"image": image, "label_map": label_map}, {"sample": row, "provenance": rows}

    results = resumable_map(store, items(), compute, batch=typed.chunk_size)
    progress.close()
    resumed = sum(r.resumed for r in results.values())
    if resumed:
        logger.info("inpaint: %d of %d samples already complete in %s; skipped", resumed, len(plan), store.url)
    return results


def run_full_synthesis(
    plan: list[dict[str, Any]],
    base_images: dict[str, Callable[[], np.ndarray]],
    base_manifest: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, ItemResult]:
    """Generate every planned full-synthesis sample (image the base's size, label map all k);
    resumable like ``run_edits``. Returns sample_id -> ItemResult."""
    if not plan:
        return {}
    typed = params_of(InpaintParams, params)
    entries = [e for e in generator_entries(typed.generators) if e["task"] == "text-to-image"]
    label_index = generator_labels(typed.generators)
    generators = build_generators(entries)
    manifest = base_manifest.set_index("base_id")
    store = WorkStore(typed.work_dir, typed.work_storage_options)
    settings = result_params(params)
    items = ((p["sample_id"], fingerprint(settings, ROW_FORMAT, p["sample_id"], _base_key(manifest, p["base_id"]), p["prompt"])
              if store.enabled else "", p) for p in plan)

    def compute(block):
        for _, p in block:
            name = p["generator"]
            height, width = base_images[p["base_id"]]().shape[:2]
            image = generators[name].generate(p["prompt"], height, width, p["seed"])
            label_map = np.full((height, width), label_index[name], dtype=np.uint8)
            described = generators[name].describe()
            rows = normalise([_provenance_row(p["sample_id"], "whole", {
                "turn": 1, "generator": name, "label": label_index[name], "region_id": "", "edit_type": FULL_SYNTHESIS,
                "prompt": p["prompt"], "seed": p["seed"], "mask_area_ratio": 1.0, "changed_pixel_ratio": 1.0,
                "registry": described.get("registry", ""), "model": described.get("model", ""),
                "candidate_seeds": [p["seed"]], "candidate_scores": [], "details": {},
            }, ("caption", ""))])
            row = _sample_row(p, manifest, n_turns=1, generators=[name], last_generator=name, edited_area_ratio=1.0,
                              edit_types=[FULL_SYNTHESIS], region_kinds=["whole"])
            yield p["sample_id"], {"image": image, "label_map": label_map}, {"sample": row, "provenance": rows}

    return resumable_map(store, tqdm(list(items), desc="full synthesis", unit="base"), compute)


def assemble_samples(
    edits: dict[str, ItemResult], synthesis: dict[str, ItemResult],
) -> tuple[dict[str, Callable[[], np.ndarray]], dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame]:
    """(edited_images, label_maps: sample_id -> loader, samples table, provenance table with one row
    per turn): edited samples in id order, then the full-synthesis ones, however the work was split."""
    ordered = [edits[k] for k in sorted(edits)] + list(synthesis.values())
    keys = [*sorted(edits), *synthesis]
    samples = table("samples", [r.data["sample"] for r in ordered])
    provenance = table("provenance", [row for r in ordered for row in r.data["provenance"]])
    logger.info("inpainted %d samples, %d edits; turns per sample: %s", len(samples), len(provenance),
                samples["n_turns"].value_counts().sort_index().to_dict())
    return ({k: r.arrays["image"] for k, r in zip(keys, ordered)},
            {k: r.arrays["label_map"] for k, r in zip(keys, ordered)}, samples, provenance)
