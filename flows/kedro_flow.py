"""Prefect flow that runs a named Kedro pipeline, one Prefect task per stage.

Each task opens its own KedroSession and runs one stage pipeline; datasets that cross stages are
persisted by the Kedro catalog (local disk or S3), never handed between tasks in memory. No stage
logic lives here: flows -> pipelines -> models.

    python -m flows.kedro_flow generate --env tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _stages(pipeline: str) -> list[str]:
    from pipelines.pipeline_registry import stages_of

    return stages_of(pipeline)


@task(name="kedro-stage", task_run_name="{stage}", retries=0)
def run_stage(stage: str, project_path: str, env: str | None, params: dict[str, Any] | None) -> list[str]:
    """Run one stage pipeline in a fresh KedroSession; returns the names of the datasets it wrote."""
    from kedro.framework.project import configure_project
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    logger = get_run_logger()
    bootstrap_project(project_path)
    configure_project("pipelines")
    with contextlib.chdir(project_path):  # catalog paths are relative to the project root
        with KedroSession.create(project_path=project_path, env=env, runtime_params=params or None) as session:
            logger.info("running Kedro pipeline %r (env=%s)", stage, env or "local")
            outputs = session.run(pipeline_name=stage)
    return sorted(outputs)


@flow(name="editlens-kedro-pipeline", log_prints=True)
def kedro_pipeline_flow(
    pipeline: str = "__default__",
    env: str | None = None,
    params: dict[str, Any] | None = None,
    project_path: str = str(PROJECT_ROOT),
) -> dict[str, list[str]]:
    """Run the Kedro pipeline ``pipeline`` (a stage such as ``ingest`` or a composite such as
    ``generate`` / ``__default__``) stage by stage. Returns {stage: datasets written}."""
    logger = get_run_logger()
    stages = _stages(pipeline)
    logger.info("pipeline %r = stages %s", pipeline, stages)
    results: dict[str, list[str]] = {}
    for stage in stages:
        results[stage] = run_stage(stage, project_path, env, params)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default="__default__")
    parser.add_argument("--env", default=None)
    parser.add_argument("--params", default=None, help="JSON object of runtime parameters")
    parser.add_argument("--project-path", default=None,
                        help="Kedro project root (default: the current folder if it has a pyproject.toml, else this repo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    project = args.project_path or (str(Path.cwd()) if (Path.cwd() / "pyproject.toml").exists() else str(PROJECT_ROOT))
    result = kedro_pipeline_flow(args.pipeline, env=args.env, params=json.loads(args.params) if args.params else None,
                                 project_path=str(Path(project).resolve()))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
