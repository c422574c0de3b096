"""The benchmark harness measures what it says: the metrics reference agrees with the project's
metrics to the last bit, streamed manifest shards partition the rows, and `make bench` rejects an
unknown section by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import metrics_bench
from benchmarks.memory import manifest
from pipelines.io.shards import shard_of, stream_shard


def test_the_metrics_reference_and_the_project_give_identical_numbers():
    pred, target = metrics_bench.label_maps(6, 128, classes=4, seed=3)
    cm_fast, bf_fast = metrics_bench.project(pred, target, 4, batch=4)
    cm_ref, bf_ref = metrics_bench.reference(pred, target, 4)
    assert cm_fast.sum() == 6 * 128 * 128
    assert np.array_equal(cm_fast, cm_ref)
    assert np.array_equal(bf_fast, bf_ref, equal_nan=True) and np.isfinite(bf_fast[1:]).all()
    # and the reference is a real check: a wrong prediction changes its numbers
    cm_other, bf_other = metrics_bench.reference(np.roll(pred, 3, axis=2), target, 4)
    assert not np.array_equal(bf_other, bf_ref, equal_nan=True)


def test_streamed_manifest_shards_partition_the_rows(tmp_path: Path):
    path = tmp_path / "manifest.parquet"
    manifest(path, 20_000)
    seen = []
    for index in range(3):
        for batch in stream_shard(str(path), (index, 3), batch_rows=4096):
            ids = batch.column("base_id").to_pylist()
            assert {shard_of(i, 3) for i in ids} == {index}
            seen += ids
    assert sorted(seen) == sorted(pd.read_parquet(path, columns=["base_id"])["base_id"])
    with pytest.raises(ValueError, match="no column 'group'"):
        next(iter(stream_shard(str(path), (0, 3), key="group")))


def test_bench_rejects_an_unknown_section():
    from benchmarks import run

    with pytest.raises(SystemExit):
        run.main(["--only", "metrics,warp_drive"])


def test_the_orchestration_bare_loop_does_the_same_work_as_the_pipeline():
    """The bare loop the orchestration benchmark times against writes the very images and label
    maps the inpaint pipeline writes: the ratio compares the same work, not less of it."""
    import cv2

    from benchmarks.common import kedro_session, project_copy
    from benchmarks.orchestration import _bare_loop

    with project_copy() as root:
        for stage in ("ingest", "perceive", "inpaint"):
            with kedro_session(root, env="tiny") as session:
                session.run(pipeline_names=[stage])
        with kedro_session(root, env="tiny") as session:
            params = session.load_context().params["inpaint"]
        n = _bare_loop(root, params, root / "bare")
        edited = sorted((root / "data" / "04_feature" / "edited_images").glob("*.png"))
        assert n == len(edited) >= 4
        for path in edited:
            kedro_image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            kedro_label = cv2.imread(str(root / "data" / "04_feature" / "label_maps" / path.name), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(cv2.imread(str(root / "bare" / path.name), cv2.IMREAD_UNCHANGED), kedro_image), path.name
            assert np.array_equal(cv2.imread(str(root / "bare" / f"{path.stem}-label.png"), cv2.IMREAD_UNCHANGED),
                                  kedro_label), path.name
