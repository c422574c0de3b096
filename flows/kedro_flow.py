"""Prefect flows that run EditLens' Kedro pipelines, one Prefect task per node group.

A flow is built from the registered Kedro pipeline itself (``flows.node_groups``): one task per
stage (or per top-level namespace inside a stage), each task opening its own KedroSession and
running exactly its nodes. Datasets that cross tasks are saved and loaded by the Kedro catalog
(local disk or S3), never handed between tasks in memory; the flow checks that before it starts.
No stage logic lives here: flows -> pipelines -> models.

Every task
- withdraws, then rewrites last, its manifest ``<data_root>/manifests/<group>.json`` listing every
  object it wrote (``flows.manifest``), so readers never pick up a half-written stage;
- retries with exponential back-off (and jitter) on storage and network errors only; a failing
  data quality gate or a bad parameter fails at once;
- has a timeout from the flow's ``orchestration`` parameters;
- carries the ``gpu`` tag when its stage needs a GPU; a Prefect concurrency limit on that tag
  (``prefect concurrency-limit create gpu 1``, done by ``make up``) keeps GPU stages from
  sharing a device.
Kedro's log records reach the Prefect UI through Prefect's API log handler (conf/base/logging.yml).

    python -m flows.kedro_flow generate --env tiny
    python -m flows.kedro_flow ingest --env tiny --params '{"ingest": {"crops_per_photo": 2}}' --shard s0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.config
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, Field

from flows.artifacts import publish_run_artifacts
from flows.manifest import DataRoot, data_root_of
from flows.node_groups import NodeGroup, canonical_pipeline, check_handoffs, node_groups
from flows.shards import check_shard_name, shard_conf_source

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GPU_TAG = "gpu"
LOGGING_CONFIG = Path("conf") / "base" / "logging.yml"


class Orchestration(BaseModel):
    """How the flow's tasks run (the ``orchestration`` flow parameter)."""

    retries: int = Field(2, ge=0, description="retries of a task that failed on a storage or network error")
    retry_backoff_s: float = Field(10.0, ge=0, description="first retry delay; doubles on every retry (+-20% jitter)")
    timeouts_s: dict[str, float] = Field(
        default_factory=lambda: {"default": 12 * 3600.0},
        description="task timeout in seconds by node group or stage name; 'default' for the others",
    )
    gpu_stages: list[str] = Field(
        default_factory=lambda: ["perceive", "inpaint", "filter", "train", "evaluate"],
        description=f"stages whose tasks carry the '{GPU_TAG}' tag (and so hold a slot of its concurrency limit)",
    )
    checksums: bool = Field(True, description="sha256 of every written object in the manifests")

    def timeout_for(self, group: NodeGroup) -> float | None:
        for key in (group.name, group.stage, "default"):
            if key in self.timeouts_s:
                return float(self.timeouts_s[key]) or None
        return None

    def tags_for(self, group: NodeGroup) -> list[str]:
        return ["editlens", f"stage:{group.stage}", *([GPU_TAG] if group.stage in self.gpu_stages else [])]


# ---- retries: only what a second attempt can fix

# Errors that say the data or configuration is wrong: a retry would fail the same way.
_PERMANENT_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_TRANSIENT_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "httpx", "s3fs")


def is_transient_storage_error(exc: BaseException | None) -> bool:
    """True if ``exc`` or anything in its cause/context chain is a storage or network failure
    worth retrying: an ``OSError`` (connection reset, timeout, ...) other than a missing or
    forbidden path, or an error raised by the S3/HTTP client libraries. Prefect's own task
    timeout is not retried."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "TaskRunTimeoutError":
            return False
        if isinstance(exc, OSError) and not isinstance(exc, _PERMANENT_OS_ERRORS):
            return True
        if type(exc).__module__.split(".")[0] in _TRANSIENT_MODULES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_on_storage_errors(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient storage/network failures."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as err:  # the result itself may be unreadable; judge by that error
            exc = err
    return is_transient_storage_error(exc if isinstance(exc, BaseException) else None)


# ---- one task = one node group in one KedroSession

def _log_to_prefect(project_path: str) -> None:
    """Apply conf/base/logging.yml (Prefect's API handler on the kedro/pipelines/models loggers).
    Done after bootstrap_project, which (re)applies Kedro's own logging configuration."""
    path = Path(project_path) / LOGGING_CONFIG
    if not path.exists():
        path = PROJECT_ROOT / LOGGING_CONFIG
    logging.config.dictConfig(yaml.safe_load(path.read_text()))


@task(name="kedro-node-group", task_run_name="{group.name}", cache_policy=NO_CACHE, persist_result=False)
def run_node_group(group: NodeGroup, project_path: str, env: str | None, params: dict[str, Any] | None,
                   shard: str | None = None, checksums: bool = True, pipeline: str | None = None) -> dict[str, Any]:
    """Run one node group in a fresh KedroSession; returns its manifest's URL and object count."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from prefect.runtime import flow_run, task_run

    from pipelines.datasets import register_filesystems

    # Before any catalog filesystem exists: makes every s3:// write all-or-nothing (the manifest too).
    register_filesystems()

    from flows.manifest import (build_manifest, changed_keys, data_root_of, dataset_prefixes, remove_manifest,
                                snapshot, write_manifest)

    logger = get_run_logger()
    bootstrap_project(project_path)
    _log_to_prefect(project_path)
    with contextlib.chdir(project_path), shard_conf_source(project_path, env, shard) as conf_source:
        with KedroSession.create(project_path=project_path, env=env, runtime_params=params or None,
                                 conf_source=conf_source) as session:
            context = session.load_context()
            root = data_root_of(context.config_loader, project_path)
            remove_manifest(root, group.name)
            before = snapshot(root)
            logger.info("running Kedro %s (env=%s%s) on %s", _describe(group), env or "local",
                        f", shard={shard}" if shard else "", root.url)
            session.run(**group.run_args())
            written = changed_keys(before, snapshot(root))
            prefixes = dataset_prefixes(context.config_loader["catalog"], root, project_path)
            meta = {"group": group.name, "stage": group.stage, "pipeline": pipeline, "env": env, "shard": shard,
                    "params": params or {}, "flow_run_id": flow_run.id, "task_run_id": task_run.id}
            manifest = build_manifest(root, written, prefixes, meta, checksums=checksums)
            url = write_manifest(root, group.name, manifest)
    logger.info("%s wrote %d objects; manifest %s", group.name, manifest["n_objects"], url)
    return {"manifest": url, "objects": manifest["n_objects"]}


def _describe(group: NodeGroup) -> str:
    return f"stage {group.stage!r}" + (f" nodes {list(group.node_names)}" if group.node_names else "")


def _plan(pipeline: str, project_path: str, env: str | None, params: dict[str, Any] | None,
          shard: str | None) -> tuple[list[NodeGroup], DataRoot]:
    """The node groups of ``pipeline``, after checking that every dataset crossing tasks is
    persisted, and the data root they write to."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    groups = node_groups(pipeline)
    with contextlib.chdir(project_path), shard_conf_source(project_path, env, shard) as conf_source:
        with KedroSession.create(project_path=project_path, env=env, runtime_params=params or None,
                                 conf_source=conf_source) as session:
            context = session.load_context()
            check_handoffs(groups, context.catalog)
            root = data_root_of(context.config_loader, project_path)
    return groups, root


def run_pipeline(pipeline: str, env: str | None = None, params: dict[str, Any] | None = None,
                 shard: str | None = None, project_path: str | None = None,
                 orchestration: Orchestration | None = None) -> dict[str, dict[str, Any]]:
    """Body shared by the flows: plan the node groups, then run them in order, one task each.
    Returns {group: {"manifest": url, "objects": n}}. Must be called inside a flow."""
    logger = get_run_logger()
    options = orchestration or Orchestration()
    project = str(Path(project_path or PROJECT_ROOT).resolve())
    if shard:
        check_shard_name(shard)
    groups, root = _plan(pipeline, project, env, params, shard)
    logger.info("pipeline %r -> %d task(s): %s", pipeline, len(groups), [g.name for g in groups])
    results: dict[str, dict[str, Any]] = {}
    for group in groups:
        configured = run_node_group.with_options(
            tags=options.tags_for(group),
            retries=options.retries,
            retry_delay_seconds=exponential_backoff(options.retry_backoff_s) if options.retry_backoff_s else 0,
            retry_jitter_factor=0.2 if options.retry_backoff_s else None,
            retry_condition_fn=retry_on_storage_errors,
            timeout_seconds=options.timeout_for(group),
        )
        results[group.name] = configured(group, project, env, params, shard, options.checksums,
                                         canonical_pipeline(pipeline))
    published = publish_run_artifacts(root, list(dict.fromkeys(group.stage for group in groups)))
    logger.info("published artifacts: %s", sorted(published))
    return results


# ---- the flows: one per user-facing pipeline, plus one for any registered pipeline

# Parameters shared by the flows below (shown in the Prefect UI's run form):
#   env            the Kedro environment: tiny, gpu, s3, ... (None = Kedro's default, `local`)
#   params         Kedro runtime parameters, e.g. {"train": {"model": "segformer"}}
#   shard          a name whose data lives under <data_root>/shards/<shard> (flows.shards)
#   project_path   the Kedro project to run (default: this checkout)
#   orchestration  retries, back-off, timeouts, GPU stages (Orchestration)


@flow(name="editlens-generate", log_prints=True)
def generate_flow(env: str | None = None, params: dict[str, Any] | None = None, shard: str | None = None,
                  project_path: str | None = None, orchestration: Orchestration | None = None) -> dict[str, Any]:
    """Build the benchmark dataset: ingest, perceive, inpaint, filter, split, stats."""
    return run_pipeline("generate", env, params, shard, project_path, orchestration)


@flow(name="editlens-train", log_prints=True)
def train_flow(env: str | None = None, params: dict[str, Any] | None = None, shard: str | None = None,
               project_path: str | None = None, orchestration: Orchestration | None = None) -> dict[str, Any]:
    """Train the binary and semantic detectors on the saved splits."""
    return run_pipeline("train", env, params, shard, project_path, orchestration)


@flow(name="editlens-evaluate", log_prints=True)
def evaluate_flow(env: str | None = None, params: dict[str, Any] | None = None, shard: str | None = None,
                  project_path: str | None = None, orchestration: Orchestration | None = None) -> dict[str, Any]:
    """Evaluate the saved detectors: metrics, confusion matrices, overlays, report."""
    return run_pipeline("evaluate", env, params, shard, project_path, orchestration)


@flow(name="editlens-full", log_prints=True)
def full_flow(env: str | None = None, params: dict[str, Any] | None = None, shard: str | None = None,
              project_path: str | None = None, orchestration: Orchestration | None = None) -> dict[str, Any]:
    """Everything `kedro run` runs (Kedro's __default__): generate, train, evaluate."""
    return run_pipeline("full", env, params, shard, project_path, orchestration)


@flow(name="editlens-kedro-pipeline", log_prints=True)
def kedro_pipeline_flow(pipeline: str = "__default__", env: str | None = None, params: dict[str, Any] | None = None,
                        project_path: str = str(PROJECT_ROOT), shard: str | None = None,
                        orchestration: Orchestration | None = None) -> dict[str, Any]:
    """Run any registered Kedro pipeline (a stage such as ``ingest``, a composite such as
    ``generate``, or ``full``/``__default__``), one task per node group. Returns
    {group: {"manifest": url, "objects": n}}."""
    return run_pipeline(pipeline, env, params, shard, project_path, orchestration)


USER_FLOWS = {"generate": generate_flow, "train": train_flow, "evaluate": evaluate_flow, "full": full_flow}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default="__default__")
    parser.add_argument("--env", default=None)
    parser.add_argument("--params", default=None, help="JSON object of runtime parameters")
    parser.add_argument("--shard", default=None, help="process the shard under <data_root>/shards/<SHARD>")
    parser.add_argument("--orchestration", default=None, help="JSON object of Orchestration fields")
    parser.add_argument("--project-path", default=None,
                        help="Kedro project root (default: the current folder if it has a pyproject.toml, else this repo)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    project = args.project_path or (str(Path.cwd()) if (Path.cwd() / "pyproject.toml").exists() else str(PROJECT_ROOT))
    orchestration = Orchestration(**json.loads(args.orchestration)) if args.orchestration else None
    result = kedro_pipeline_flow(args.pipeline, env=args.env, params=json.loads(args.params) if args.params else None,
                                 project_path=str(Path(project).resolve()), shard=args.shard,
                                 orchestration=orchestration)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
