"""Filter: score every edited image with no-reference quality scorers and mark the ones that
fail a threshold. Dropped samples stay in the table with the reason; nothing is deleted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from models.quality import create_quality_scorer

logger = logging.getLogger(__name__)


def _check_rules(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        if "scorer" not in rule or not ({"max", "min"} & set(rule)):
            raise ValueError(f"each filter.checks entry needs 'scorer' and 'max' and/or 'min', got {rule}")


def filter_samples(
    edited_images: dict[str, Callable[[], np.ndarray]],
    samples: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Add one ``quality_<scorer>`` column per configured check plus ``kept`` (bool) and
    ``drop_reason`` ('' when kept; e.g. 'brisque 63.1 > 60' otherwise). Seed: BRISQUE > 60 dropped."""
    rules = list(params["checks"])
    _check_rules(rules)
    scorers = {rule["scorer"]: create_quality_scorer(rule["scorer"]) for rule in rules}
    scores: dict[str, list[float]] = {name: [] for name in scorers}
    reasons: list[list[str]] = [[] for _ in range(len(samples))]
    for i, sample_id in enumerate(tqdm(samples["sample_id"], desc="filter", unit="image")):
        image = edited_images[sample_id]()
        for name, scorer in scorers.items():
            try:
                scores[name].append(float(scorer.score(image)))
            except ValueError as exc:  # e.g. a flat image has no natural-scene statistics
                logger.warning("%s: %s could not score it: %s", sample_id, name, exc)
                scores[name].append(float("nan"))
                reasons[i].append(f"{name} unscorable: {exc}")
    table = samples.copy()
    for name, values in scores.items():
        table[f"quality_{name}"] = values
    for rule in rules:
        column = np.asarray(table[f"quality_{rule['scorer']}"], dtype=float)
        for i, value in enumerate(column):
            if np.isnan(value):
                continue  # already recorded as unscorable
            if "max" in rule and not value <= rule["max"]:
                reasons[i].append(f"{rule['scorer']} {value:.1f} > {rule['max']}")
            if "min" in rule and not value >= rule["min"]:
                reasons[i].append(f"{rule['scorer']} {value:.1f} < {rule['min']}")
    table["drop_reason"] = ["; ".join(r) for r in reasons]
    table["kept"] = table["drop_reason"] == ""
    dropped = table[~table["kept"]]
    logger.info("filter kept %d of %d samples; dropped per last generator: %s", int(table["kept"].sum()),
                len(table), dropped["last_generator"].value_counts().to_dict())
    return table
