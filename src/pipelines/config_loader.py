"""Kedro's OmegaConfigLoader with a per-process cache of resolved configuration.

Every KedroSession builds a new context, and every context parses conf/ again: parameters,
catalog, gates and logging cost 0.3-0.5 s of OmegaConf work on these machines, per session.
The Prefect flows open one session per node group and ``flows.sharded`` one per shard, all in the
same worker process, so without a cache a 64-shard run re-parses the same files 64 times.

A cached entry is keyed by everything the result depends on: the configuration key, the
environments, the runtime parameters, the loader's patterns and merge strategies, and the bytes
of every file under ``conf_source`` (read and hashed each time: about 1 ms for this project's
conf/). Editing a file, switching ``--env`` or passing other ``--params`` therefore misses the
cache. Not cached: ``credentials`` (resolved from environment variables, which may change
between sessions; never kept in memory longer than Kedro keeps them) and any ``conf_source`` that
is not a local folder (an archive or a remote URL). Callers get a deep copy, so nothing they do
to the returned dict reaches the cache.

Layered environments: ``--env diffseg30k+diffseg30k-tiny`` reads base, then ``diffseg30k``, then
``diffseg30k-tiny``, each merged over the one before with the key's merge strategy (parameters,
globals and gates merge softly, so a layer names only what it changes). A recipe is one env; its
tiny-scale variant is a second env layered on it, and ``+s3`` puts any of them on object storage.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

from pipelines.contract.labels import with_label_space

UNCACHED_KEYS = frozenset({"credentials"})
_CACHE: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()
_MAX_ENTRIES = 256


def conf_digest(folder: str | Path) -> str:
    """sha256 over the relative path and bytes of every non-hidden file under ``folder``."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest.update(str(relative).encode())
        digest.update(b"\x00")
        digest.update(path.read_bytes())
        digest.update(b"\x00")
    return digest.hexdigest()


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class CachedOmegaConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose ``loader[key]`` is parsed once per process for the same files,
    environments and runtime parameters (see the module docstring)."""

    def _cache_key(self, key: str) -> str | None:
        source = str(self.conf_source)
        if key in UNCACHED_KEYS or not os.path.isdir(source):
            return None
        settings = json.dumps({
            "source": os.path.abspath(source), "env": self.env, "base_env": self.base_env,
            "default_run_env": self.default_run_env, "runtime_params": self.runtime_params,
            "patterns": self.config_patterns.get(key), "merge": self.merge_strategy.get(key),
        }, sort_keys=True, default=str)
        return hashlib.sha256(f"{settings}\x00{conf_digest(source)}".encode()).hexdigest()

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key == "parameters":  # an import's label space is every stage's (pipelines.contract.labels)
            return with_label_space(self._cached(key))
        return self._cached(key)

    def _cached(self, key: str) -> dict[str, Any]:
        if key in self.data:  # set explicitly on this loader: Kedro's own behaviour
            return super().__getitem__(key)
        signature = self._cache_key(key)
        if signature is None:
            return self._layered(key)
        with _LOCK:
            cached = _CACHE.get((key, signature))
        if cached is None:
            cached = self._layered(key)  # raises (missing files, bad YAML) are never cached
            with _LOCK:
                if len(_CACHE) >= _MAX_ENTRIES:
                    _CACHE.pop(next(iter(_CACHE)))
                _CACHE[(key, signature)] = cached
        return copy.deepcopy(cached)

    def _layered(self, key: str) -> dict[str, Any]:
        """Kedro's base + env merge, then every further ``+``-joined env merged over it in order.

        Raises:
            ValueError: a layer names an environment folder that does not exist under conf_source.
        """
        layers = (self.env or "").split("+")
        if len(layers) == 1:
            return super().__getitem__(key)
        full_env = self.env
        try:
            self.env = layers[0]
            result = super().__getitem__(key)
        finally:
            self.env = full_env
        for layer in layers[1:]:
            path = self._get_conf_env_path(layer)
            if os.path.isdir(str(self.conf_source)) and not os.path.isdir(path):
                raise ValueError(f"--env {full_env!r}: no environment folder {path!r} for layer {layer!r}")
            configs = self._read_dir_configs(path, [*self.config_patterns[key]], key, set(), key == "credentials")
            if configs:
                result = self._merge_configs(result, self._merge_and_resolve(key, configs), key, path)
        return result
