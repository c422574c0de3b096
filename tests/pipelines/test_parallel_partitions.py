"""ParallelPartitionedDataset: the same files as kedro-datasets' serial PartitionedDataset, lazy
partitions materialised in the pool, and a failing partition named in the error."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError
from kedro_datasets.partitions import PartitionedDataset

from pipelines.datasets import ParallelPartitionedDataset

PNG = {"type": "pipelines.datasets.PNGDataset", "mode": "RGB"}


def images(n: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"s{i:03d}": rng.integers(0, 256, (40 + i, 32, 3), dtype=np.uint8) for i in range(n)}


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_parallel_save_writes_exactly_the_serial_files(tmp_path):
    data = images()
    PartitionedDataset(path=str(tmp_path / "serial"), dataset=PNG, filename_suffix=".png").save(data)
    threads: set[str] = set()

    def lazy(array):
        def load():
            threads.add(threading.current_thread().name)
            return array
        return load

    parallel = ParallelPartitionedDataset(path=str(tmp_path / "parallel"), dataset=PNG, filename_suffix=".png",
                                          save_workers=3)
    parallel.save({k: lazy(v) for k, v in data.items()})
    assert digests(tmp_path / "parallel") == digests(tmp_path / "serial")
    assert all(name.startswith("partition-save") for name in threads), threads  # loaded in the pool
    loaded = parallel.load()
    assert sorted(loaded) == sorted(data)
    assert all(np.array_equal(loaded[k](), v) for k, v in data.items())


def test_a_failing_partition_is_named_and_the_written_ones_stay_whole(tmp_path):
    data = images(6)
    loaders = {k: (lambda v=v: v) for k, v in data.items()}

    def broken():
        raise OSError("work store file truncated")

    loaders["s003"] = broken
    dataset = ParallelPartitionedDataset(path=str(tmp_path / "out"), dataset=PNG, filename_suffix=".png", save_workers=2)
    with pytest.raises(DatasetError, match="s003.*work store file truncated"):
        dataset.save(loaders)
    written = ParallelPartitionedDataset(path=str(tmp_path / "out"), dataset=PNG, filename_suffix=".png").load()
    assert "s003" not in written
    for key, load in written.items():  # every file that exists is complete
        assert np.array_equal(load(), data[key])
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]


def test_overwrite_replaces_the_folder_and_bad_worker_counts_are_refused(tmp_path):
    folder = tmp_path / "out"
    ParallelPartitionedDataset(path=str(folder), dataset=PNG, filename_suffix=".png").save(images(4))
    ParallelPartitionedDataset(path=str(folder), dataset=PNG, filename_suffix=".png", overwrite=True).save(
        {"a": images(1)["s000"], "b": images(1)["s000"]})
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
    with pytest.raises(DatasetError, match="save_workers must be >= 1"):
        ParallelPartitionedDataset(path=str(folder), dataset=PNG, save_workers=0)
