"""Shards, two kinds.

1. Sample shards (``flows.sharded``): one data root, and shard ``i`` of ``n`` is the set of base ids
   whose crc32 mod ``n`` is ``i`` (``pipelines.io.shards.shard_of``). The inpaint and filter stages
   process one shard per Prefect task when their parameters carry ``shard: {index, count}``
   (``shard_params``) and write every finished sample to their work store; the ordinary stage
   run afterwards merges. This is how one dataset is spread over many GPU workers.

2. Data-root shards (below, ``--shard`` of ``flows.kedro_flow``): independent slices of a dataset
   build, each under its own data root.

A shard named ``s`` runs the same pipeline with ``data_root`` = ``<data_root>/shards/<s>``: it reads
its inputs from there (``01_raw/...``, or the ingest parameters the run passes, such as
``ingest.folder.root``) and writes every dataset there, so shards never overwrite each other and can
run on several GPU workers at once. Kedro resolves ``${globals:data_root}`` before runtime parameters
apply (``runtime_params:`` is not allowed in globals), so the shard's root is set in a throwaway
copy of the configuration passed to ``KedroSession.create(conf_source=...)``; the project's own
``conf/`` is never modified.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from pipelines.io.shards import parse_shard, shard_of  # noqa: F401  (shard_of: re-exported)

SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_shard_name(shard: str) -> str:
    """Return ``shard`` if it is a safe path segment (letters, digits, ``._-``; at most 64), else
    raise ``ValueError``."""
    if not SHARD_NAME.match(shard):
        raise ValueError(f"shard {shard!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return shard


def shard_data_root(data_root: str, shard: str) -> str:
    return f"{data_root.rstrip('/')}/shards/{check_shard_name(shard)}"


@contextlib.contextmanager
def shard_conf_source(project_path: str | Path, env: str | None, shard: str | None) -> Iterator[str | None]:
    """Yield a ``conf_source`` for ``KedroSession.create``: ``None`` (the project's conf/) when
    ``shard`` is empty, else a temporary copy of conf/ whose run environment sets
    ``data_root`` to the shard's root. The copy is removed on exit."""
    if not shard:
        yield None
        return
    from kedro.framework.project import settings

    conf = Path(project_path) / settings.CONF_SOURCE
    run_env = env or settings.CONFIG_LOADER_ARGS.get("default_run_env", "local")
    loader = settings.CONFIG_LOADER_CLASS(str(conf), env=run_env, **settings.CONFIG_LOADER_ARGS)
    data_root = str(loader["globals"]["data_root"])
    with tempfile.TemporaryDirectory(prefix=f"editlens-shard-{check_shard_name(shard)}-") as tmp:
        copy = Path(tmp) / "conf"
        shutil.copytree(conf, copy)
        env_globals = copy / run_env / "globals.yml"
        env_globals.parent.mkdir(parents=True, exist_ok=True)
        values = yaml.safe_load(env_globals.read_text()) if env_globals.exists() else None
        values = values or {}
        values["data_root"] = shard_data_root(data_root, shard)
        env_globals.write_text(yaml.safe_dump(values, sort_keys=False))
        yield str(copy)


def shard_params(stage: str, index: int, count: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runtime parameters that restrict ``stage`` (inpaint, filter) to sample shard ``index`` of
    ``count``, on top of ``params`` (not modified)."""
    parse_shard({"index": index, "count": count})  # validates
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in (params or {}).items()}
    merged[stage] = {**(merged.get(stage) or {}), "shard": {"index": int(index), "count": int(count)}}
    return merged
