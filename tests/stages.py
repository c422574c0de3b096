"""Run a stage's wired nodes (the pipeline ``pipelines.pipeline_registry`` registers) on in-memory data.

Tests call the nodes exactly as Kedro wires them, plan -> run -> assemble, without a catalog on disk.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def run_stage(stage: str, data: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every dataset the stage's nodes output, given its inputs in ``data`` (and ``params`` as
    ``params:<stage>``). Raises KeyError naming an input that is missing."""
    from pipelines.pipeline_registry import register_pipelines

    from models.cache import ModelCache

    # a fresh model cache unless the test hands one in (holding tiny models under their keys)
    known = {"model_cache": ModelCache(), **data, **({f"params:{stage}": params} if params is not None else {})}
    for node in register_pipelines()[stage].nodes:  # topologically sorted
        missing = [name for name in node.inputs if name not in known]
        if missing:
            raise KeyError(f"stage {stage!r} node {node.name!r} needs {missing}")
        known.update(node.run({name: known[name] for name in node.inputs}))
    return known


def perceive_regions(base_images, base_annotations, params, model_cache=None):
    """The perceive stage: (region_masks, regions); its models from ``model_cache`` when given."""
    models = {"model_cache": model_cache} if model_cache is not None else {}
    out = run_stage("perceive", {"base_images": base_images, "base_annotations": base_annotations, **models}, params)
    return out["region_masks"], out["regions"]


def inpaint_samples(base_images, base_manifest, region_masks, regions, params):
    """The inpaint stage: (edited_images, label_maps, samples, provenance)."""
    out = run_stage("inpaint", {"base_images": base_images, "base_manifest": base_manifest,
                                "region_masks": region_masks, "regions": regions}, params)
    return out["edited_images"], out["label_maps"], out["samples"], out["provenance"]


def filter_samples(edited_images, samples, params, base_images=None, provenance=None, model_cache=None):
    """The filter stage: (filtered_samples, filter_report); its scorers from ``model_cache`` when given."""
    models = {"model_cache": model_cache} if model_cache is not None else {}
    out = run_stage("filter", {"edited_images": edited_images, "samples": samples, "provenance": provenance,
                               "base_images": base_images, **models}, params)
    return out["filtered_samples"], out["filter_report"]


def contract_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column the contract's table ``name`` has (``pipelines.contract.schemas``),
    missing ones filled with a neutral value of their dtype ('' / 0 / 0.0 / False / []); the given
    columns are kept as they are. For hand-made test tables that name only what a test needs."""
    from pipelines.contract.schemas import SCHEMAS

    fill = {"str": "", "int": 0, "float": 0.0, "bool": False}
    frame = frame.copy()
    for column, kind in SCHEMAS[name].columns.items():
        if column not in frame:
            frame[column] = [[] for _ in range(len(frame))] if kind.startswith("list[") else [fill[kind]] * len(frame)
    return frame
