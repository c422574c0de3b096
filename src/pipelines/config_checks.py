"""Configuration checks that run before any node does (``ConfigCheckHooks.before_pipeline_run``).

A typo in a generator name or a split ratio that does not sum to 1 should fail in the first
second of a run, not after an hour of inpainting. ``check_parameters`` looks at the parameter
sections the pipeline reads (``params:<section>`` inputs; all sections when unknown) and returns
every problem found; ``ConfigError`` lists them all at once, each naming the parameter, the bad
value and what is allowed (for registry names: the known names).

Checked: registry names (generators, detectors, perceivers, quality scorers, VLMs), the ingest
source, split ratios (non-negative, one per split name, sum 1), thresholds and ratios in [0, 1],
sizes > 0, and ``trust_remote_code``, which may only be switched on per model (inside an entry's
``kwargs``), never for a whole section.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from pipelines.contract.labels import run_label_space
from pipelines.contract.params import typed_problems

TOLERANCE = 1e-6


class ConfigError(ValueError):
    """The run's parameters are unusable; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("configuration rejected before any work started:\n  - " + "\n  - ".join(self.problems))


def _known(family: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        if family == "generator":
            from models.generators import list_generators, list_text_to_image

            return sorted({*list_generators(), *list_text_to_image()})
        if family == "detector":
            from models.detectors import list_detectors

            return list_detectors()
        if family == "perceiver":
            from models.perception import list_perceivers

            return list_perceivers()
        if family == "quality scorer":
            from models.quality import list_quality_scorers

            return list_quality_scorers()
        if family == "vlm":
            from models.perception.vlm import list_vlms

            return list_vlms()
        raise KeyError(family)

    return names


def _check_name(problems: list[str], where: str, value: Any, family: str, extra: Iterable[str] = ()) -> None:
    if value is None:
        return
    known = [*extra, *_known(family)()]
    if str(value) not in known:
        problems.append(f"{where}: unknown {family} {value!r}; known: {', '.join(known)}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _in_range(problems: list[str], where: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    number = _number(value)
    if number is None or not low <= number <= high:
        problems.append(f"{where}: {value!r} is out of range; must be a number in [{low:g}, {high:g}]")


def _positive(problems: list[str], where: str, value: Any, integer: bool = True) -> None:
    if value is None:
        return
    number = _number(value)
    if number is None or number <= 0 or (integer and number != int(number)):
        problems.append(f"{where}: {value!r} must be a positive {'integer' if integer else 'number'}")


def _check_ratios(problems: list[str], where: str, ratios: Any, names: Any = None) -> None:
    if ratios is None:
        return
    if not isinstance(ratios, (list, tuple)) or not ratios:
        problems.append(f"{where}: must be a list of numbers, got {ratios!r}")
        return
    numbers = [_number(r) for r in ratios]
    if any(n is None or n < 0 for n in numbers):
        problems.append(f"{where}: {list(ratios)} has a negative or non-numeric ratio")
        return
    total = sum(numbers)
    if abs(total - 1.0) > TOLERANCE:
        problems.append(f"{where}: {list(ratios)} sums to {total:g}, not 1")
    if isinstance(names, (list, tuple)) and len(names) != len(ratios):
        problems.append(f"{where}: {len(ratios)} ratios for {len(names)} split names {list(names)}")


def _generator_entries(problems: list[str], where: str, generators: Any, registry: bool = True) -> None:
    """Entries need a name; with ``registry`` (where generators are built: inpaint, ai_bases) the
    registry must know each. Elsewhere the list is only the label space (an import's own names)."""
    if generators is None:
        return
    if not isinstance(generators, (list, tuple)) or not generators:
        problems.append(f"{where}: must be a non-empty list of generator entries, got {generators!r}")
        return
    for index, entry in enumerate(generators):
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not entry.get("name"):
            problems.append(f"{where}[{index}]: a generator entry needs a name, got {entry!r}")
            continue
        if registry:
            _check_name(problems, f"{where}[{index}] ({entry['name']})", entry.get("generator") or entry["name"], "generator")


def _check_label_space(problems: list[str], params: dict[str, Any]) -> None:
    """The run's label space, whatever the sections: split, train, evaluate and export read it."""
    try:
        run_label_space(params)
    except ValueError as error:
        problems.append(str(error))


def _check_trust_remote_code(problems: list[str], value: Any, path: str) -> None:
    """``trust_remote_code: true`` is allowed only in a model entry's kwargs (``...kwargs.trust_remote_code``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "trust_remote_code" and item is True and "kwargs" not in path:
                problems.append(f"{child}: trust_remote_code may only be switched on per model (in one entry's "
                                "kwargs), never for a whole section")
            _check_trust_remote_code(problems, item, child)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_trust_remote_code(problems, item, f"{path}[{index}]")


def check_parameters(params: dict[str, Any], sections: Iterable[str] | None = None) -> list[str]:
    """Every problem in ``params`` (the merged parameters), limited to ``sections`` when given."""
    wanted = set(sections) if sections is not None else None
    problems: list[str] = []

    def section(name: str) -> dict[str, Any] | None:
        if wanted is not None and name not in wanted:
            return None
        value = params.get(name)
        return value if isinstance(value, dict) else None

    if (ingest := section("ingest")) is not None:
        from pipelines.ingest.nodes import PHOTO_SOURCES
        from pipelines.ingest.published import PUBLISHED_FORMATS

        source = ingest.get("source")
        known = PHOTO_SOURCES if isinstance(source, list) else (*PHOTO_SOURCES, *PUBLISHED_FORMATS)
        problems += [f"ingest.source: unknown source {one!r}; known: {', '.join(known)}"  # a list chains photo sources
                     for one in (source if isinstance(source, list) else [source]) if one is not None and one not in known]
        _positive(problems, "ingest.image_size", ingest.get("image_size"))
        _positive(problems, "ingest.crops_per_photo", ingest.get("crops_per_photo"))
        _generator_entries(problems, "ingest.published.generators", (ingest.get("published") or {}).get("generators"), False)
        ai_bases = ingest.get("ai_bases") or {}
        if isinstance(ai_bases, dict):
            _in_range(problems, "ingest.ai_bases.ratio", ai_bases.get("ratio"), 0.0, 1.0)
            _generator_entries(problems, "ingest.ai_bases.generators", ai_bases.get("generators"))
    if (perceive := section("perceive")) is not None:
        _check_name(problems, "perceive.perceiver", perceive.get("perceiver"), "perceiver", extra=["auto"])
        _check_name(problems, "perceive.fallback_perceiver", perceive.get("fallback_perceiver"), "perceiver")
        for key in ("iou_threshold", "min_area_ratio", "max_area_ratio"):
            _in_range(problems, f"perceive.{key}", perceive.get(key), 0.0, 1.0)
        low, high = _number(perceive.get("min_area_ratio")), _number(perceive.get("max_area_ratio"))
        if low is not None and high is not None and low > high:
            problems.append(f"perceive.min_area_ratio ({low:g}) is larger than perceive.max_area_ratio ({high:g})")
        weights = perceive.get("turn_count_weights")
        if weights is not None and (not isinstance(weights, (list, tuple)) or not weights
                                    or any((_number(w) is None or _number(w) < 0) for w in weights)
                                    or not sum(_number(w) for w in weights) > 0):
            problems.append(f"perceive.turn_count_weights: {weights!r} must be non-negative numbers, not all 0")
        _in_range(problems, "perceive.perturbation.p", (perceive.get("perturbation") or {}).get("p"), 0.0, 1.0)
        for index, entry in enumerate(perceive.get("vlms") or []):
            if isinstance(entry, dict):
                _check_name(problems, f"perceive.vlms[{index}]", entry.get("vlm") or entry.get("name"), "vlm")
    if (inpaint := section("inpaint")) is not None:
        _generator_entries(problems, "inpaint.generators", inpaint.get("generators"))
        _in_range(problems, "inpaint.full_synthesis.ratio", (inpaint.get("full_synthesis") or {}).get("ratio"), 0.0, 1.0)
        _positive(problems, "inpaint.candidates_per_edit", inpaint.get("candidates_per_edit"))
    if (filt := section("filter")) is not None:
        for index, check in enumerate(filt.get("checks") or []):
            if not isinstance(check, dict) or "scorer" not in check:
                problems.append(f"filter.checks[{index}]: needs a scorer, got {check!r}")
                continue
            _check_name(problems, f"filter.checks[{index}].scorer", check["scorer"], "quality scorer")
            for bound in ("min", "max"):
                if check.get(bound) is not None and _number(check[bound]) is None:
                    problems.append(f"filter.checks[{index}].{bound}: {check[bound]!r} is not a number")
            low, high = _number(check.get("min")), _number(check.get("max"))
            if low is not None and high is not None and low > high:
                problems.append(f"filter.checks[{index}]: min {low:g} is larger than max {high:g}; nothing would pass")
    if (split := section("split")) is not None:
        _check_ratios(problems, "split.ratios", split.get("ratios"), split.get("names"))
        for name, protocol in (split.get("protocols") or {}).items():
            if isinstance(protocol, dict):
                _check_ratios(problems, f"split.protocols.{name}.ratios", protocol.get("ratios"), protocol.get("names"))
        _generator_entries(problems, "split.generators", split.get("generators"), registry=False)
    if (train := section("train")) is not None:
        _check_name(problems, "train.model", train.get("model"), "detector")
        _generator_entries(problems, "train.generators", train.get("generators"), registry=False)
        trainer = train.get("trainer") or {}
        for key in ("steps", "batch_size", "crop_size"):
            _positive(problems, f"train.trainer.{key}", trainer.get(key))
        _positive(problems, "train.trainer.lr", trainer.get("lr"), integer=False)
    if (evaluate := section("evaluate")) is not None:
        for key in ("image_threshold", "pixel_threshold"):
            _in_range(problems, f"evaluate.{key}", evaluate.get(key), 0.0, 1.0)
    _check_label_space(problems, params)
    for name, value in params.items():
        if wanted is None or name in wanted:
            _check_trust_remote_code(problems, value, str(name))
    return _with_type_problems(problems, params, wanted)


def _with_type_problems(problems: list[str], params: dict[str, Any], wanted: set[str] | None) -> list[str]:
    """``problems`` plus the types and bounds of ``pipelines.contract.params``; a parameter
    already named by a check above is not named twice."""
    named = {problem.split(":", 1)[0].split(" ", 1)[0] for problem in problems}
    return problems + [p for p in typed_problems(params, wanted) if p.split(":", 1)[0] not in named]


def sections_read_by(pipeline: Any) -> set[str] | None:
    """Top-level parameter sections a pipeline reads (``params:train.trainer`` -> ``train``);
    None (= all) when a node takes the whole ``parameters``."""
    inputs = set(pipeline.inputs()) if pipeline is not None else set()
    if "parameters" in inputs or pipeline is None:
        return None
    return {name[len("params:"):].split(".", 1)[0] for name in inputs if name.startswith("params:")}


def check_run(params: dict[str, Any], pipeline: Any = None) -> None:
    """Raise ``ConfigError`` listing every problem in the sections ``pipeline`` reads."""
    problems = check_parameters(params, sections_read_by(pipeline))
    if problems:
        raise ConfigError(problems)
