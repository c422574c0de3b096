"""Shards: which items a shard of a stage holds, and a parquet table read shard by shard.

``<stage>.shard = {index: i, count: n}`` makes a stage process only the items whose base id falls in
shard ``i`` of ``n`` (``in_shard``: crc32 of the base id mod n, stable across processes and machines).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import fsspec
from kedro.io.core import get_protocol_and_path


def shard_of(base_id: str, count: int) -> int:
    """The shard (0..count-1) of ``base_id``: crc32 of its UTF-8 bytes mod ``count``."""
    return zlib.crc32(str(base_id).encode("utf-8")) % int(count)


def parse_shard(value: Any) -> tuple[int, int] | None:
    """``{index, count}`` (or None) -> (index, count); raises ValueError on a bad value."""
    if not value:
        return None
    try:
        index, count = int(value["index"]), int(value["count"])
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"shard must be {{index: i, count: n}}, got {value!r}") from exc
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..count-1 and count >= 1, got index={index} count={count}")
    return index, count


def in_shard(base_id: str, shard: tuple[int, int] | None) -> bool:
    return shard is None or shard_of(base_id, shard[1]) == shard[0]


def shard_batches(handle: Any, shard: tuple[int, int] | None, key: str = "base_id", batch_rows: int = 8192,
                  columns: list[str] | None = None, name: str = "parquet file") -> Iterable[Any]:
    """Row batches (pyarrow RecordBatch) of the open parquet file ``handle`` whose ``key`` column
    falls in ``shard``, read ``batch_rows`` at a time, so memory holds one batch plus the rows
    kept. ``columns``: only these (``key`` is read for the test either way)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(handle)
    names = reader.schema_arrow.names
    if key not in names:
        raise ValueError(f"{name}: no column {key!r} to shard on (columns: {names})")
    wanted = None if columns is None else list(dict.fromkeys([*columns, key]))
    for batch in reader.iter_batches(batch_size=batch_rows, columns=wanted):
        if shard is not None:
            keep = [shard_of(value, shard[1]) == shard[0] for value in batch.column(key).to_pylist()]
            batch = batch.filter(pa.array(keep)) if not all(keep) else batch
        if columns is not None and key not in columns:
            batch = batch.select(columns)
        if batch.num_rows:
            yield batch


def stream_shard(path: str, shard: tuple[int, int] | None, key: str = "base_id", batch_rows: int = 8192,
                 storage_options: dict[str, Any] | None = None) -> Iterable[Any]:
    """``shard_batches`` of the parquet manifest at ``path`` (local or an fsspec URL): a worker's
    memory stays flat however long the manifest is (benchmarks/memory.py shows it on 100k rows)."""
    protocol, fs_path = get_protocol_and_path(path)
    fs = fsspec.filesystem(protocol, **(storage_options or {}))
    with fs.open(fs_path, "rb") as handle:
        yield from shard_batches(handle, shard, key, batch_rows, name=path)
