"""``resumable_map``: the one loop that perceive, inpaint and filter run their items through.

Each item has a key (a base or sample id), a fingerprint of everything its result depends on
(``pipelines.io.resume.fingerprint``) and a payload (what the computation needs). An item whose
record in the work store is complete for its fingerprint is loaded, not redone; the others go to
``compute`` in batches of consecutive keys, and each result is written to the store as soon as
``compute`` yields it (so a crash loses at most the batch in flight). With the store disabled
(``work_dir: null``) every item is computed and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.io.resume import WorkStore

Loader = Callable[[], np.ndarray]


@dataclass
class ItemResult:
    """One item's result: its arrays as loaders (read from the store when Kedro saves them, or
    held in memory without a store) and its JSON data (table rows); ``resumed``: loaded, not computed."""

    arrays: dict[str, Loader]
    data: dict[str, Any]
    resumed: bool = False


def _held(array: np.ndarray) -> Loader:
    return lambda: array


def resumable_map(
    store: WorkStore,
    plan: Iterable[tuple[str, str, Any]],
    compute: Callable[[list[tuple[str, Any]]], Iterator[tuple[str, dict[str, np.ndarray], dict[str, Any]]]],
    *,
    batch: int = 1,
    compress: bool = False,
    on_resumed: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, ItemResult]:
    """Run ``compute`` on every item of ``plan`` not already complete in ``store``.

    Args:
        plan: (key, fingerprint, payload) in processing order; read lazily, one item at a time.
        compute: gets [(key, payload)] (at most ``batch``, consecutive in ``plan`` among the items
            to do) and yields (key, arrays, data) for each of them, in any order.
        compress: zlib the arrays in the store (masks).
        on_resumed: called with (key, data) for each item loaded from the store, in ``plan`` order
            relative to the computed batches (perceive replays its balancer counts with it).

    Returns:
        key -> ItemResult for every planned item. Raises ValueError if ``compute`` skips a key.
    """
    results: dict[str, ItemResult] = {}
    pending: list[tuple[str, Any]] = []
    fingerprints: dict[str, str] = {}

    def flush() -> None:
        for key, arrays, data in compute(pending):
            if store.enabled:
                record = store.save(key, arrays, data, fingerprints[key], compress=compress)
                loaders = {name: store.lazy(key, name, record) for name in arrays}
            else:
                loaders = {name: _held(array) for name, array in arrays.items()}
            results[key] = ItemResult(loaders, data)
        missing = [key for key, _ in pending if key not in results]
        if missing:
            raise ValueError(f"resumable_map: compute returned no result for {missing}")
        pending.clear()

    for key, fp, payload in plan:
        record = store.load_record(key, fp) if store.enabled else None
        if record is None:
            fingerprints[key] = fp
            pending.append((key, payload))
            if len(pending) >= max(1, batch):
                flush()
            continue
        arrays = {name: store.lazy(key, name, record) for name in record.get("arrays", {})}
        results[key] = ItemResult(arrays, record["data"], resumed=True)
        if on_resumed is not None:
            on_resumed(key, record["data"])
    if pending:
        flush()
    return results
