"""Memory: peak resident memory of a whole tiny `kedro run` and of one generation worker (a
process running one inpaint shard, ``flows.sharded.run_shard``), each in its own process; and a
shard task's read of its input table (``pipelines.datasets.ShardedParquetDataset``, streamed by
``pipelines.io.shards.shard_batches``) from a 10k- and a 100k-row table in 2,500-row shards, whose
peak must not grow with the table (a whole pandas load of the same file is shown next to it)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import peak_rss_of, project_copy

# A shard task's read of its input table (pipelines.datasets.ShardedParquetDataset, what the
# catalog's `regions`, `base_manifest` and `samples` are), with shards of ~2,500 rows: the number
# of shards grows with the table, as it would for a real run, so the worker's share stays the same.
SHARD_ROWS = 2_500
STREAM = """
import sys
from pipelines.datasets import ShardedParquetDataset
count = max(1, int(sys.argv[2]) // %d)
table = ShardedParquetDataset(filepath=sys.argv[1], shard={"index": 0, "count": count}).load()
print('rows', len(table))
""" % SHARD_ROWS
PANDAS = """
import sys, pandas as pd
from pipelines.io.shards import shard_of
count = max(1, int(sys.argv[2]) // %d)
table = pd.read_parquet(sys.argv[1])
print('rows', len(table[[shard_of(b, count) == 0 for b in table['base_id']]]))
""" % SHARD_ROWS


TURNS = [["sd2"], ["sdxl", "flux"], ["kolors", "glide", "sd3.5"]]


def manifest(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    pd.DataFrame({
        "sample_id": [f"photo{i:07d}-c0-v0" for i in range(rows)],
        "base_id": [f"photo{i:07d}-c0" for i in range(rows)],
        "generators": [TURNS[i] for i in rng.integers(0, len(TURNS), rows)],  # a list column, as samples has
        "prompt": rng.choice(["a red car on the street", "replace the sky with a sunset", "remove the dog"], rows),
        "edited_area_ratio": rng.random(rows),
        "n_turns": rng.integers(1, 4, rows),
    }).to_parquet(path, row_group_size=8192)


def streaming() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="editlens-bench-mem-") as tmp:
        for rows in (10_000, 100_000):
            path = Path(tmp) / f"manifest-{rows}.parquet"
            manifest(path, rows)
            out[f"stream_{rows}_rows_mib"] = peak_rss_of([sys.executable, "-c", STREAM, str(path), str(rows)], Path(tmp))[1]
            out[f"pandas_{rows}_rows_mib"] = peak_rss_of([sys.executable, "-c", PANDAS, str(path), str(rows)], Path(tmp))[1]
    out["stream_growth_10k_to_100k_mib"] = out["stream_100000_rows_mib"] - out["stream_10000_rows_mib"]
    out["pandas_growth_10k_to_100k_mib"] = out["pandas_100000_rows_mib"] - out["pandas_10000_rows_mib"]
    return out


def tiny_run() -> dict[str, Any]:
    with project_copy() as root:
        kedro = str(Path(sys.executable).with_name("kedro"))
        wall, peak, _ = peak_rss_of([kedro, "run", "--env", "tiny"], root)
    return {"tiny_kedro_run_s": wall, "tiny_kedro_run_peak_mib": peak, "target_make_run_mib": 4096}


WORKER = """
import sys
from flows.sharded import run_shard
print(run_shard('inpaint', 0, 1, sys.argv[1], None))
"""


def generation_worker(root: Path) -> dict[str, Any]:
    """One worker process inpainting every sample (shard 0 of 1) of the project at ``root``, whose
    ingest + perceive outputs exist (benchmarks.orchestration leaves them)."""
    wall, peak, _ = peak_rss_of([sys.executable, "-c", WORKER, str(root)], root)
    return {"generation_worker_s": wall, "generation_worker_peak_mib": peak}
