"""BR-Gen's tables from one evaluation pass (the ``brgen`` protocol; "Zooming In on Fakes" section 5).

- ``table``: one row of Tables 2 / 3: Real R@50, F1, AUC, (forged) R@50, IoU, and R@50 of the
  forged images per generator family (Split A: GAN / diffusion) and per region kind (Split B:
  background / stuff). F1 / AUC are image level (fake = positive); IoU is IMDL-BenCo's per-image
  pixel IoU averaged over the forged images.
- ``area_r50``: Table 7, R@50 of the forged images by edited-area ratio (columns "<20%" ... "<100%").
- ``cross_type``: Table 4, one entry per transfer (a ``transfer`` split protocol, e.g. GAN ->
  diffusion): Gen. R@50 of the target type's forged images and Real R@50, when the checkpoint
  was trained on that protocol; otherwise ``skipped`` says which training run fills it.

Pure pandas / numpy over ``DetectionMetrics.per_image`` and the evaluation item table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.metrics import DetectionMetrics, brgen_table_row, recall_at_50_by_area, recall_at_50_by_group
from pipelines.contract.params import BrgenTables


def _last(values: Any) -> str | None:
    return str(values[-1]) if values is not None and len(values) else None


def item_types(items: pd.DataFrame, families: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(generator family, region kind) of each item's last turn; None for authentic items and
    for generators ``families`` does not name."""
    lookup = {name.lower(): family for name, family in families.items()}
    family = np.array([lookup.get(g.lower()) if g else None for g in items["last_generator"]], dtype=object)
    kind = np.array([_last(k) for k in items["region_kinds"]], dtype=object)
    return family, kind


# Why a table cell is undefined (NaN), as the paper-table renderer shows it ("n/a (<why>)").
_UNDEFINED = {
    "r50_real": "no real image in the evaluation split", "f1": "F1 undefined on this split",
    "auc": "AUC needs real and forged images", "r50_fake": "no forged image in the evaluation split",
    "iou": "no pixel mask from this detector (image-level)",
    "r50_gan": "no forged evaluation image from a GAN inpainter (evaluate.protocols.brgen.families)",
    "r50_diffusion": "no forged evaluation image from a diffusion inpainter (evaluate.protocols.brgen.families)",
    "r50_background": "no forged evaluation image of a background region",
    "r50_stuff": "no forged evaluation image of a stuff region",
}


def explained(values: dict[str, float], reasons: dict[str, str]) -> dict[str, Any]:
    """``values`` with each NaN replaced by ``{"skipped": reason}`` (the renderer's n/a text); a
    key without a reason says that no forged image falls in it (Table 7's empty area columns)."""
    return {key: {"skipped": reasons.get(key, f"no forged evaluation image in {key}")} if isinstance(value, float) and np.isnan(value)
            else value for key, value in values.items()}


def _cross_type(name: str, rule: dict[str, str], trained_on: str | None, values: dict[str, np.ndarray],
                types: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    by, target = rule.get("by"), rule.get("target")
    if by not in types or not target or not rule.get("source"):
        return {"skipped": f"evaluate.protocols.brgen.cross_type.{name} needs by (generator_family | region_kind), "
                           "source and target"}
    if trained_on != name:
        return {"skipped": f"the checkpoint was trained on split protocol {trained_on!r}; this transfer needs a "
                           f"run with --params train.dataset.protocol={name}"}
    fake = values["is_fake"].astype(bool)
    test = ~fake | (types[by] == target)
    if not (fake & test).any():
        return {"skipped": f"no forged evaluation image of {by} {target!r}"}
    recall = recall_at_50_by_group(values["score"][test], fake[test].astype(int), types[by][test], threshold)
    return {"by": by, "source": rule["source"], "target": target, "gen_r50": recall.get(str(target), float("nan")),
            "real_r50": recall["real"], "n_forged": int((fake & test).sum()), "n_real": int((~fake).sum())}


def brgen_tables(clean: DetectionMetrics, items: pd.DataFrame, cfg: BrgenTables, threshold: float,
                 checkpoint_config: dict[str, Any]) -> dict[str, Any]:
    """Tables 2-4 and 7 of BR-Gen from the in-domain predictions ``clean`` (positions = rows of
    ``items``, ``protocols.item_table``), at image threshold ``threshold`` (R@50: 0.5).

    Returns {"families", "table", "area_r50", "cumulative_area", "cross_type"} (see the module
    docstring), or {"skipped": why} when the split has no forged image.
    """
    values = clean.per_image()
    if len(items) != values["score"].size:
        raise ValueError(f"{len(items)} evaluation items but {values['score'].size} predictions")
    fake = values["is_fake"]
    if not fake.any():
        return {"skipped": "the evaluation split has no forged image"}
    family, kind = item_types(items, cfg.families)
    area = np.where(fake == 1, items["edited_area_ratio"].fillna(0.0).to_numpy(dtype=float), 0.0)
    trained_on = (checkpoint_config.get("dataset") or {}).get("protocol")
    types = {"generator_family": family, "region_kind": kind}
    return {
        "families": dict(cfg.families),
        "table": explained(brgen_table_row(values["score"], fake, values["iou"], family, kind, threshold), _UNDEFINED),
        "area_r50": explained(recall_at_50_by_area(values["score"], fake, area, tuple(cfg.area_edges),
                                                   cfg.cumulative_area, threshold), {}),
        "cumulative_area": cfg.cumulative_area,
        "trained_on": trained_on,
        "cross_type": {name: _cross_type(name, rule, trained_on, values, types, threshold)
                       for name, rule in cfg.cross_type.items()},
    }
