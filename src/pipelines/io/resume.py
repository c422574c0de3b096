"""Resumable, shardable per-sample work for the expensive stages (inpaint, filter).

A stage that processes samples one by one writes each finished sample to a *work store*
(``<stage>.work_dir``, e.g. ``${globals:data_root}/04_feature/inpaint_work``) as soon as it is done:
its arrays as ``.npy`` files (``<key>/<name>.npy``, no pickle; raw, so writing and reading them
back costs next to nothing, where PNG encoding doubled Kedro's overhead), each write all-or-nothing
on disk and on S3, then its record ``<key>.json`` last. The record holds the
sample's table rows and a fingerprint of everything the result depends on (the stage parameters
that matter, the input images' hashes, the sample's table rows). A sample is complete only when its
record exists, its fingerprint matches and its arrays hash as recorded; anything else (a crash
between the arrays and the record, a changed configuration or input) is redone. Re-running a stage after a
crash therefore skips the finished samples, redoes the half-finished ones and can neither duplicate
(one record per key) nor lose (every planned key is either loaded or recomputed) a sample.

Shards: ``<stage>.shard = {index: i, count: n}`` makes the stage process only the samples whose base
id falls in shard ``i`` of ``n`` (``in_shard``: crc32 of the base id mod n, stable across processes
and machines). ``flows.sharded`` runs one task per shard, then the ordinary stage node, which finds
every sample complete and only assembles the outputs.

Every random choice is drawn per sample (``sample_rng(seed, key)``), so a sample's result does not
depend on which other samples ran in the same process, shard or attempt.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import get_protocol_and_path

from pipelines.contract.ids import SAFE_ID
from pipelines.datasets import write_bytes_atomically

logger = logging.getLogger(__name__)

SAFE_KEY = SAFE_ID  # one rule for ids and work-store keys (pipelines.contract.ids)
# Parameters that change how work is scheduled, never its results.
SCHEDULING_PARAMS = ("shard", "work_dir", "work_storage_options", "chunk_size", "max_pipelines_on_device",
                     "max_pipelines_loaded")


def fingerprint(*parts: Any) -> str:
    """sha256 of the parts: arrays by dtype, shape and bytes; anything else as sorted JSON."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def result_params(params: Any) -> dict[str, Any]:
    """The stage parameters minus the ones that only schedule work (shard, chunk size, caps). A
    typed section (pydantic) counts the values that were set, as its dict did, so a work store
    written before the parameters were typed stays valid."""
    if hasattr(params, "model_dump"):
        params = params.model_dump(by_alias=True, exclude_unset=True)
    return {k: v for k, v in params.items() if k not in SCHEDULING_PARAMS}


def normalise(record: Any) -> Any:
    """``record`` as it comes back from JSON (numpy scalars -> Python), so a row built fresh and a
    row loaded from the store are identical and the tables do not depend on resumption."""
    return json.loads(json.dumps(record, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class WorkStore:
    """Per-sample records and arrays under ``url`` (a local folder or an fsspec URL such as s3://).

    ``url=None`` disables the store: nothing is skipped or written (``enabled`` is False).
    """

    def __init__(self, url: str | None, storage_options: dict[str, Any] | None = None):
        self.url = str(url).rstrip("/") if url else None
        self.storage_options = dict(storage_options or {})
        self._fs = None
        self._listed: set[str] | None = None
        if self.url:
            protocol, path = get_protocol_and_path(self.url)
            endpoint = os.environ.get("EDITLENS_S3_ENDPOINT")
            if protocol in ("s3", "s3a") and not self.storage_options and endpoint:
                # conf/s3's `storage` credentials: keys from AWS_* (botocore reads them), endpoint here
                self.storage_options = {"client_kwargs": {"endpoint_url": endpoint}}
            self.protocol, self.path = protocol, path
            self._fs = fsspec.filesystem(protocol, **self.storage_options)

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @staticmethod
    def check_key(key: str) -> str:
        if not SAFE_KEY.match(key):
            raise ValueError(f"sample id {key!r} cannot name a work-store file (letters, digits and ._+=- only)")
        return key

    def _array_path(self, key: str, name: str) -> str:
        return f"{self.path}/{key}/{name}.npy"

    def _record_path(self, key: str) -> str:
        return f"{self.path}/{key}.json"

    def _records_present(self) -> set[str]:
        """Keys with a record file, from one listing of the store (cheap on S3: 1 request/1000 keys)."""
        if self._listed is None:
            self._listed = set()
            if self._fs.exists(self.path):
                for name in self._fs.ls(self.path, detail=False):
                    base = name.rstrip("/").rsplit("/", 1)[-1]
                    if base.endswith(".json") and not base.startswith(".tmp-"):
                        self._listed.add(base[:-5])
        return self._listed

    def load_record(self, key: str, expected_fingerprint: str) -> dict[str, Any] | None:
        """The record of ``key`` if the sample is complete for ``expected_fingerprint``, else None."""
        if not self.enabled or self.check_key(key) not in self._records_present():
            return None
        try:
            record = json.loads(self._fs.cat_file(self._record_path(key)))
        except (OSError, ValueError) as exc:
            logger.warning("work store %s: record of %s unreadable (%s); redoing it", self.url, key, exc)
            return None
        if record.get("fingerprint") != expected_fingerprint:
            logger.info("work store %s: %s was made with other inputs or parameters; redoing it", self.url, key)
            return None
        return record

    def load_array(self, key: str, name: str, record: dict[str, Any]) -> np.ndarray:
        """One array of a complete sample, checked against the hash in its record."""
        kind, digest = record["arrays"][name]
        payload = self._fs.cat_file(self._array_path(key, name))
        if hashlib.sha256(payload).hexdigest() != digest:
            raise ValueError(f"work store {self.url}: {key}/{name}.npy does not match its record; "
                             f"delete {key}.json and re-run to redo it")
        return np.load(io.BytesIO(zlib.decompress(payload) if kind == "npy+zlib" else payload), allow_pickle=False)

    def save(self, key: str, arrays: dict[str, np.ndarray], data: dict[str, Any], fp: str,
             compress: bool = False) -> dict[str, Any]:
        """Write the arrays, then the record last (that makes the sample complete). Returns the record.
        ``compress``: zlib the arrays (for masks, which shrink ~100x; images are left raw: fast)."""
        self.check_key(key)
        record = {"fingerprint": fp, "arrays": {}, "data": normalise(data)}
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            payload = zlib.compress(buffer.getvalue(), 1) if compress else buffer.getvalue()
            write_bytes_atomically(self._fs, self.protocol, self._array_path(key, name), payload)
            record["arrays"][name] = ["npy+zlib" if compress else "npy", hashlib.sha256(payload).hexdigest()]
        write_bytes_atomically(self._fs, self.protocol, self._record_path(key),
                               json.dumps(record, sort_keys=True).encode())
        if self._listed is not None:
            self._listed.add(key)
        return record

    def lazy(self, key: str, name: str, record: dict[str, Any]) -> Callable[[], np.ndarray]:
        """A loader for a PartitionedDataset output: the array is read when Kedro saves it."""
        return lambda: self.load_array(key, name, record)


def split_done(store: WorkStore, items: Iterable[tuple[str, str]]) -> tuple[dict[str, dict], list[str]]:
    """(key, fingerprint) pairs -> ({key: record} of the complete ones, [keys still to do])."""
    done, todo = {}, []
    for key, fp in items:
        record = store.load_record(key, fp)
        if record is None:
            todo.append(key)
        else:
            done[key] = record
    return done, todo
