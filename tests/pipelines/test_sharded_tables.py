"""ShardedParquetDataset: a shard task reads exactly its shard's rows of a table (the rows a
whole load would keep, same dtypes), streamed; the catalog wires it to the runtime shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import DatasetError

from pipelines.datasets import ShardedParquetDataset
from pipelines.io.shards import shard_of


def table(rows: int = 5_000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "sample_id": [f"b{i // 3:05d}-v{i % 3}" for i in range(rows)],
        "base_id": [f"b{i // 3:05d}" for i in range(rows)],
        "turn": rng.integers(1, 4, rows),
        "area_ratio": rng.random(rows),
        "prompt": rng.choice(["a red car", "remove the dog", None], rows),
        "kept": rng.random(rows) > 0.5,
    })


@pytest.mark.parametrize("count", [1, 3, 7])
def test_each_shard_reads_the_rows_a_whole_load_would_keep(tmp_path: Path, count: int):
    path = tmp_path / "regions.parquet"
    whole = table()
    ShardedParquetDataset(filepath=str(path)).save(whole)
    assert ShardedParquetDataset(filepath=str(path)).load().equals(whole)
    seen = 0
    for index in range(count):
        got = ShardedParquetDataset(filepath=str(path), shard={"index": index, "count": count},
                                    load_args={}).load()
        want = whole[[shard_of(b, count) == index for b in whole["base_id"]]].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        seen += len(got)
    assert seen == len(whole)


def test_columns_an_empty_shard_and_bad_shards(tmp_path: Path):
    path = tmp_path / "samples.parquet"
    whole = table(6)  # two base ids: most of 50 shards are empty
    ShardedParquetDataset(filepath=str(path)).save(whole)
    empty = next(i for i in range(50) if all(shard_of(b, 50) != i for b in whole["base_id"]))
    got = ShardedParquetDataset(filepath=str(path), shard={"index": empty, "count": 50}).load()
    assert len(got) == 0 and list(got.columns) == list(whole.columns)
    some = ShardedParquetDataset(filepath=str(path), shard={"index": shard_of("b00000", 2), "count": 2},
                                 load_args={"columns": ["sample_id", "turn"]}).load()
    assert list(some.columns) == ["sample_id", "turn"] and set(some["sample_id"]) >= {"b00000-v0"}
    with pytest.raises(DatasetError, match="samples.parquet.*shard index"):
        ShardedParquetDataset(filepath=str(path), shard={"index": 3, "count": 2})
    with pytest.raises(DatasetError, match="no column 'group'"):
        ShardedParquetDataset(filepath=str(path), shard={"index": 0, "count": 2}, shard_key="group").load()


def test_the_catalog_gives_a_shard_run_only_its_rows(project_copy: Path):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny") as session:
        session.run(pipeline_names=["ingest", "perceive"])
    runtime = {"inpaint": {"shard": {"index": 1, "count": 3}}}
    with KedroSession.create(project_path=project_copy, env="tiny", runtime_params=runtime) as session:
        catalog = session.load_context().catalog
        regions, manifest = catalog.load("regions"), catalog.load("base_manifest")
        samples_shard = catalog["samples"]._shard  # filter.shard is not set: filter reads everything
    whole = pd.read_parquet(project_copy / "data" / "03_primary" / "regions.parquet")
    assert 0 < len(regions) < len(whole)
    assert {shard_of(b, 3) for b in regions["base_id"]} == {1}
    assert {shard_of(b, 3) for b in manifest["base_id"]} == {1}
    assert samples_shard is None
