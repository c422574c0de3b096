"""Sharded, resumable generation: the ``generate`` pipeline with inpaint and filter fanned out over
sample shards, one Prefect task per shard.

For every node group of ``generate`` (``flows.node_groups``), in order:

- ingest, perceive, split, stats run as one task each (``flows.kedro_flow.run_node_group``).
  Perceive is not sharded: its region balancer keeps dataset-level counts, so cutting it into
  shards would change which regions are chosen (and it is cheap next to diffusion).
- inpaint and filter first run ``num_shards`` shard tasks (``shard_task.map``): each opens a
  KedroSession with the runtime parameter ``<stage>.shard = {index, count}`` and runs the stage's
  node on its shard's samples; every finished sample goes to the stage's work store
  (``pipelines.io.resume``), nothing else is written. Then the stage's ordinary task runs: it finds
  every sample complete, assembles the catalog outputs (images, tables) exactly as an unsharded
  run would, runs the data-quality gates and writes the stage's manifest (the merge).

Resumption comes with it: a shard task that was killed is simply run again (Prefect retries on
storage errors; a re-run of the flow re-runs every shard) and skips the samples it already finished.
Same config + seed -> the same dataset whatever ``num_shards`` is, because every random choice is
drawn per sample (``sample_rng``) and a sample's result depends on nothing else.

Where the tasks run is the task runner's business, not this module's:
- default (``ThreadPoolTaskRunner``): shard tasks of one flow run in this process one after the
  other (a KedroSession changes the process-wide working directory); the diffusers pipeline cache
  (``models.generators.diffusion``) keeps every model loaded once for all of them;
- ``--task-runner dask`` (``prefect-dask``'s ``DaskTaskRunner``): the shard tasks fan out to Dask
  worker processes, ``--workers`` of them on a local cluster (one thread each), or to an existing
  cluster at ``--dask-address`` (workers on many hosts); ``--dask-cluster-class
  dask_cuda.LocalCUDACluster`` gives one worker per GPU (dask-cuda pins each to its device; not
  installed here). A worker process loads each model once and keeps it for every shard it is
  given. The other tasks (ingest, perceive, the merges) run in the flow's own process;
- one flow run per GPU host via the Kubernetes work pool (infra/): after ingest + perceive, each
  host runs ``--only-stage inpaint --shards 0-15`` (its share), and one last full run merges
  (every sample is then complete, so it only assembles) and goes on.

    python -m flows.sharded --env tiny --num-shards 4
    python -m flows.sharded --env tiny --num-shards 4 --task-runner dask --workers 2
    python -m flows.sharded --env gpu --num-shards 64 --only-stage inpaint --shards 0-15   # one host
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows.kedro_flow import PROJECT_ROOT, Orchestration, retry_on_storage_errors, run_node_group
from flows.node_groups import node_groups
from flows.shards import shard_params

SHARDED_STAGES = ("inpaint", "filter")
# KedroSession + relative catalog paths need the project as working directory, which is
# process-wide: shard tasks in one process take turns.
_PROCESS_LOCK = threading.Lock()


def run_shard(stage: str, index: int, count: int, project_path: str | Path, env: str | None = None,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``stage``'s node on sample shard ``index`` of ``count`` in this process; only the work
    store is written. Returns {stage, shard, count, samples}."""
    if stage not in SHARDED_STAGES:
        raise ValueError(f"stage {stage!r} cannot be sharded; sharded stages: {SHARDED_STAGES}")
    from pipelines.datasets import register_filesystems

    register_filesystems()  # all-or-nothing s3:// writes
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project = str(Path(project_path).resolve())
    runtime = shard_params(stage, index, count, params)
    with _PROCESS_LOCK, contextlib.chdir(project):
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env=env, runtime_params=runtime) as session:
            catalog = session.load_context().catalog
            # The stage's nodes in order, in memory: its work store gets the shard's items; the
            # catalog gets nothing (the stage's ordinary task assembles the outputs later).
            outputs: dict[str, Any] = {}
            for node in pipelines[stage].nodes:
                outputs.update(node.run({name: outputs[name] if name in outputs else catalog.load(name)
                                         for name in node.inputs}))
    table = outputs.get("samples", outputs.get("filtered_samples"))
    return {"stage": stage, "shard": int(index), "count": int(count), "samples": int(len(table)),
            "host": socket.gethostname(), "pid": os.getpid()}


TASK_RUNNERS = ("threads", "dask")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_thread_env() -> dict[str, str]:
    """OMP/MKL/OpenBLAS thread counts for Dask workers: this process's values, else the CPU count
    (what torch and OpenCV use in a plain process)."""
    return {name: os.environ.get(name, str(os.cpu_count() or 1)) for name in THREAD_VARIABLES}


def make_task_runner(kind: str = "threads", workers: int | None = None, address: str | None = None,
                     cluster_class: str | None = None) -> Any:
    """The Prefect task runner the shard tasks are mapped on: None (Prefect's default thread pool,
    every shard in the flow's process) for ``threads``; for ``dask`` a ``DaskTaskRunner`` on an
    existing cluster (``address``) or on a new local one: ``workers`` processes (default 2) with
    one thread each, on 127.0.0.1 unless ``cluster_class`` says otherwise."""
    if kind not in TASK_RUNNERS:
        raise ValueError(f"task runner must be one of {TASK_RUNNERS}, got {kind!r}")
    if kind == "threads":
        if workers or address or cluster_class:
            raise ValueError("--workers / --dask-address / --dask-cluster-class need --task-runner dask")
        return None
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - prefect-dask is in the lock
        raise RuntimeError("--task-runner dask needs prefect-dask: pip install prefect-dask") from exc
    if address:
        if workers or cluster_class:
            raise ValueError("--dask-address connects to a running cluster: --workers / --dask-cluster-class do not apply")
        return DaskTaskRunner(address=address)
    n = 2 if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"--workers must be >= 1, got {n}")
    kwargs: dict[str, Any] = {"n_workers": n, "threads_per_worker": 1, "dashboard_address": None}
    if cluster_class is None:
        # Dask starts workers with OMP/MKL/OpenBLAS limited to 1 thread; CPU kernels then sum in
        # another order than in `kedro run` and the images differ in their last bits. Workers keep
        # this host's thread settings instead, so every way of running gives the same dataset.
        kwargs.update(processes=True, host="127.0.0.1", env=worker_thread_env())
    return DaskTaskRunner(cluster_class=cluster_class, cluster_kwargs=kwargs)


@task(name="kedro-shard", task_run_name="{stage}-shard-{index}-of-{count}", cache_policy=NO_CACHE,
      persist_result=False)
def shard_task(stage: str, index: int, count: int, project_path: str, env: str | None,
               params: dict[str, Any] | None) -> dict[str, Any]:
    get_run_logger().info("%s: shard %d of %d", stage, index, count)
    return run_shard(stage, index, count, project_path, env, params)


def parse_range(text: str | None, count: int) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; None -> every shard. Raises ValueError outside 0..count-1."""
    if not text:
        return list(range(count))
    out: list[int] = []
    for part in str(text).split(","):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    bad = [i for i in out if not 0 <= i < count]
    if bad:
        raise ValueError(f"shards {bad} outside 0..{count - 1}")
    return sorted(set(out))


@flow(name="editlens-generate-sharded", log_prints=True)
def sharded_generate_flow(num_shards: int = 4, env: str | None = None, params: dict[str, Any] | None = None,
                          shards: str | None = None, only_stage: str | None = None, project_path: str | None = None,
                          stages: list[str] | None = None,
                          orchestration: Orchestration | None = None) -> dict[str, Any]:
    """``generate`` with inpaint and filter mapped over ``num_shards`` sample shards.

    ``shards`` ('0-15') limits the shard tasks to some indices; ``only_stage`` ('inpaint') runs only
    that stage's shard tasks (a host's share, once the stages before it are done), no merge."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    logger = get_run_logger()
    options = orchestration or Orchestration()
    project = str(Path(project_path or PROJECT_ROOT).resolve())
    sharded = tuple(stages or SHARDED_STAGES)
    indices = parse_range(shards, num_shards)
    with contextlib.chdir(project):
        from kedro.framework.startup import bootstrap_project
        bootstrap_project(project)
        groups = node_groups("generate")
    results: dict[str, Any] = {}
    if only_stage is not None and only_stage not in sharded:
        raise ValueError(f"only_stage must be one of {sharded}, got {only_stage!r}")
    for group in groups:
        if only_stage is not None and group.stage != only_stage:
            continue
        retry = dict(retries=options.retries, retry_condition_fn=retry_on_storage_errors,
                     retry_delay_seconds=exponential_backoff(options.retry_backoff_s) if options.retry_backoff_s else 0,
                     timeout_seconds=options.timeout_for(group), tags=options.tags_for(group))
        if group.stage in sharded:
            futures = shard_task.with_options(**retry).map(group.stage, indices, unmapped(num_shards), unmapped(project),
                                                           unmapped(env), unmapped(params))
            results[f"{group.name}.shards"] = [f.result() for f in futures]
            logger.info("%s: %d shard(s) done: %s", group.name, len(indices), results[f"{group.name}.shards"])
            if only_stage is not None:
                continue
        results[group.name] = run_node_group.with_options(**retry)(group, project, env, params, None,
                                                                  options.checksums, "generate")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-shards", type=int, default=4)
    parser.add_argument("--shards", default=None, help="shard indices for this run, e.g. 0-15 (default: all)")
    parser.add_argument("--only-stage", default=None, choices=SHARDED_STAGES, help="only this stage's shard tasks")
    parser.add_argument("--env", default=None)
    parser.add_argument("--params", default=None, help="JSON object of runtime parameters")
    parser.add_argument("--project-path", default=None)
    parser.add_argument("--task-runner", default="threads", choices=TASK_RUNNERS,
                        help="where shard tasks run: this process (threads) or Dask worker processes (dask)")
    parser.add_argument("--workers", type=int, default=None, help="local Dask worker processes (default 2)")
    parser.add_argument("--dask-address", default=None, help="scheduler of a running Dask cluster, e.g. tcp://host:8786")
    parser.add_argument("--dask-cluster-class", default=None, help="e.g. dask_cuda.LocalCUDACluster (one worker per GPU)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.task_runner == "dask":  # a closing local cluster logs each worker's dropped connection
        logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        runner = make_task_runner(args.task_runner, args.workers, args.dask_address, args.dask_cluster_class)
    except ValueError as exc:
        parser.error(str(exc))
    project = args.project_path or (str(Path.cwd()) if (Path.cwd() / "pyproject.toml").exists() else str(PROJECT_ROOT))
    # The importable module's flow, not __main__'s (python -m flows.sharded): Dask workers unpickle
    # the shard task by reference, and only flows.sharded.shard_task can be imported there.
    from flows import sharded as importable

    flow_fn = importable.sharded_generate_flow
    flow_fn = flow_fn if runner is None else flow_fn.with_options(task_runner=runner)
    result = flow_fn(args.num_shards, env=args.env, params=json.loads(args.params) if args.params else None,
                                   shards=args.shards, only_stage=args.only_stage, project_path=project)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
