"""A list of quality checks (scorer + bounds) applied to one edited image: what BR-Gen's
evaluation stage runs on each output and what its regeneration loop waits for (section 3.2.3:
BRISQUE > 60 removed, DreamSim similarity to the original, CLIP score for the prompt-based
outputs only; "additional images were generated ... to address data shortages caused by
filtering").

A check is ``{scorer, min and/or max, kwargs, name, generators}``: ``generators`` (optional)
lists the generator names the check applies to; a sample any of whose turns used another
generator is not scored by it (BR-Gen's CLIP check skips LaMa and MAT, which take no prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import create_quality_scorer


def check_name(rule: Mapping[str, Any]) -> str:
    """The name of a check: its ``name``, else its scorer's."""
    return str(rule.get("name", rule["scorer"]))


def validate_checks(rules: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError when a check lacks ``scorer`` or both bounds, or two checks share a name."""
    names = []
    for rule in rules:
        if "scorer" not in rule or not ({"max", "min"} & set(rule)):
            raise ValueError(f"each quality check needs 'scorer' and 'max' and/or 'min', got {dict(rule)}")
        generators = rule.get("generators")
        if generators is not None and (isinstance(generators, str) or not all(isinstance(g, str) for g in generators)):
            raise ValueError(f"check {check_name(rule)!r}: 'generators' must be a list of names, got {generators!r}")
        names.append(check_name(rule))
    if len(set(names)) != len(names):
        raise ValueError(f"quality check names must be unique (set `name` to use a scorer twice), got {names}")


def applies(rule: Mapping[str, Any], generators: Sequence[str]) -> bool:
    """Whether ``rule`` scores a sample made by ``generators`` (every turn's must be listed)."""
    wanted = rule.get("generators")
    return wanted is None or (bool(generators) and set(generators) <= set(wanted))


def threshold_failures(name: str, value: float, minimum: float | None, maximum: float | None) -> list[str]:
    """The failed bounds of one score as report text ('brisque 63.1 > 60'); none for NaN (not scored)."""
    if np.isnan(value):
        return []
    out = []
    if maximum is not None and not value <= maximum:
        out.append(f"{name} {value:.1f} > {maximum}")
    if minimum is not None and not value >= minimum:
        out.append(f"{name} {value:.1f} < {minimum}")
    return out


class QualityGate:
    """Score an edited image with every check and say which bounds it fails.

    Args:
        checks: check entries (see the module docstring); validated here.
        build: ``(scorer name, kwargs) -> scorer``; default ``create_quality_scorer`` (a caller
            with a model cache passes its own so scorers are shared).
    """

    def __init__(self, checks: Sequence[Mapping[str, Any]],
                 build: Callable[[str, dict[str, Any]], Any] | None = None):
        validate_checks(checks)
        build = build or (lambda name, kwargs: create_quality_scorer(name, **kwargs))
        self.rules = [dict(rule) for rule in checks]
        self.scorers = {check_name(r): build(r["scorer"], dict(r.get("kwargs") or {})) for r in self.rules}

    def scores(self, image: np.ndarray, *, generators: Sequence[str], prompts: Sequence[str] = (),
               reference: np.ndarray | None = None) -> dict[str, float]:
        """name -> score of ``image`` ((H, W, 3) uint8); NaN for a check that does not apply to
        ``generators``. Raises ValueError as the scorers do (e.g. no reference for a similarity)."""
        out = {}
        for rule in self.rules:
            name = check_name(rule)
            if not applies(rule, generators):
                out[name] = float("nan")
                continue
            scorer = self.scorers[name]
            context: dict[str, Any] = {}
            if "prompt" in scorer.needs:
                context["prompt"] = list(prompts)
            if "reference" in scorer.needs:
                if reference is None:
                    raise ValueError(f"check {name!r} compares with the original image; none given")
                context["reference"] = reference
            out[name] = float(scorer.score(image, **context))
        return out

    def failures(self, scores: Mapping[str, float]) -> list[str]:
        """Report text of every bound ``scores`` fails (see ``threshold_failures``)."""
        return [text for rule in self.rules
                for text in threshold_failures(check_name(rule), float(scores[check_name(rule)]),
                                               rule.get("min"), rule.get("max"))]
