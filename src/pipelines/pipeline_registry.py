"""Project pipelines, registered explicitly (one package per stage under ``src/pipelines/``)."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from pipelines import baselines, detect, evaluate, export, filter, ingest, inpaint, perceive, split, stats, train
from pipelines.ingest import imports

# Stage order; composite pipelines are runs of stages. flows/ reads these to make one Prefect
# task per stage. `import` (a published dataset in place of ingest .. inpaint), `export`
# (write the dataset in published formats) and `detect` (a checkpoint on one's own photos) run
# only when asked for.
STAGES: dict[str, object] = {
    "ingest": ingest, "import": imports, "perceive": perceive, "inpaint": inpaint, "filter": filter,
    "split": split, "stats": stats, "train": train, "evaluate": evaluate, "export": export, "detect": detect,
}
COMPOSITES: dict[str, list[str]] = {
    "generate": ["ingest", "perceive", "inpaint", "filter", "split", "stats"],
    "published": ["import", "filter", "split", "stats", "train", "evaluate"],
    "__default__": ["ingest", "perceive", "inpaint", "filter", "split", "stats", "train", "evaluate"],
}


def stages_of(pipeline_name: str) -> list[str]:
    """The stages, in order, that make up ``pipeline_name`` (a stage or a composite)."""
    if pipeline_name in STAGES:
        return [pipeline_name]
    if pipeline_name in COMPOSITES:
        return list(COMPOSITES[pipeline_name])
    raise KeyError(f"unknown pipeline {pipeline_name!r}; known: {sorted([*STAGES, *COMPOSITES])}")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines: dict[str, Pipeline] = {name: module.create_pipeline() for name, module in STAGES.items()}
    for name, members in COMPOSITES.items():
        pipelines[name] = sum((pipelines[m] for m in members), Pipeline([]))
    # Not a stage of the data flow: a comparison run on an existing split, only when asked for.
    pipelines["baselines"] = baselines.create_pipeline()
    return pipelines
