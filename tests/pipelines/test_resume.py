"""Resumable, sharded generation (issue 8): a `kedro run` killed mid-inpaint, then re-run, ends
with exactly the dataset of an uninterrupted run, which here is the sharded Prefect flow
(`python -m flows.sharded`, 3 shards): one comparison covers resumption and sharding. Plus the
shard assignment and the work store's rules."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.io.resume import WorkStore, fingerprint
from pipelines.io.shards import parse_shard, shard_of

REPO = Path(__file__).resolve().parents[2]
# Every file the generate pipeline writes that carries the dataset (tables and images).
COMPARED = ("04_feature/edited_images", "04_feature/label_maps", "04_feature/samples.parquet",
            "04_feature/provenance.parquet", "05_model_input/filtered_samples.parquet",
            "05_model_input/splits.parquet")


def _start(cwd: Path, command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")]), "COLUMNS": "400"}
    log = open(cwd / f"kedro-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _kedro(cwd: Path, *args: str) -> subprocess.Popen:
    return _start(cwd, [str(Path(sys.executable).with_name("kedro")), "run", "--pipeline", "generate",
                        "--env", "tiny", *args])


def _finish(proc: subprocess.Popen, cwd: Path, timeout: float = 240) -> None:
    code = proc.wait(timeout=timeout)
    logs = "".join(p.read_text()[-3000:] for p in sorted(cwd.glob("kedro-*.log")))
    assert code == 0, logs


def _project(parent: Path, name: str) -> Path:
    """Another copy of the project in ``parent`` (pyproject.toml, conf/, an empty src/)."""
    folder = parent / name
    folder.mkdir()
    shutil.copy(parent / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(parent / "conf", folder / "conf")
    (folder / "src").mkdir()
    return folder


def _hashes(data: Path) -> dict[str, str]:
    out = {}
    for item in COMPARED:
        path = data / item
        files = sorted(path.glob("*.png")) if path.is_dir() else [path]
        for f in files:
            out[str(f.relative_to(data))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_generation_killed_mid_inpaint_resumes_to_the_sharded_flows_dataset(project_copy: Path):
    reference, crashed = _project(project_copy, "reference"), _project(project_copy, "crashed")
    # Both start at once (2 cores); the crashed run saves every sample as soon as it is done
    # (chunk_size 1: a scheduling knob that must not change any result).
    uninterrupted = _start(reference, [sys.executable, "-m", "flows.sharded", "--env", "tiny", "--num-shards", "3"])
    victim = _kedro(crashed, "--params", "inpaint.chunk_size=1")
    work = crashed / "data" / "04_feature" / "inpaint_work"
    deadline = time.monotonic() + 180
    while len(list(work.glob("*.json"))) < 3:
        assert victim.poll() is None, "the run ended before it could be killed mid-inpaint"
        assert time.monotonic() < deadline, "no inpainted sample appeared in time"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert not (crashed / "data" / "04_feature" / "samples.parquet").exists(), "killed after inpaint finished"
    done = sorted(work.glob("*.json"))
    # Make one sample half-finished, as a crash between its arrays and its record leaves it.
    done[0].unlink()
    _finish(uninterrupted, reference)
    n_samples = len(pd.read_parquet(reference / "data" / "04_feature" / "samples.parquet"))
    flow_log = sorted(reference.glob("kedro-*.log"))[-1].read_text()
    result, _ = json.JSONDecoder().raw_decode(flow_log[flow_log.index("{\n"):])
    assert [s["shard"] for s in result["inpaint.shards"]] == [0, 1, 2]
    assert sum(s["samples"] for s in result["inpaint.shards"]) == n_samples  # shards partition the samples
    assert f"{n_samples} of {n_samples} samples already complete" in flow_log  # the merge redid nothing
    assert 3 <= len(done) < n_samples

    resumed = _kedro(crashed, "--params", "inpaint.chunk_size=1")
    _finish(resumed, crashed)
    log = sorted(crashed.glob("kedro-*.log"))[-1].read_text()
    assert f"{len(done) - 1} of {n_samples} samples already complete" in log

    want, got = _hashes(reference / "data"), _hashes(crashed / "data")
    assert len([k for k in want if k.endswith(".png")]) == 2 * n_samples
    for table in ("04_feature/samples.parquet", "04_feature/provenance.parquet", "05_model_input/filtered_samples.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(crashed / "data" / table),
                                      pd.read_parquet(reference / "data" / table), check_exact=True)
    assert got == want  # same files, same bytes: nothing lost, duplicated or changed
    assert len(list(work.glob("*.json"))) == n_samples


def test_shards_partition_the_base_ids_stably():
    ids = [f"photo{i}-c{j}" for i in range(200) for j in range(3)]
    shards = [shard_of(i, 7) for i in ids]
    assert set(shards) == set(range(7))
    assert shards == [shard_of(i, 7) for i in ids]  # no per-process salt (unlike hash())
    assert shard_of("astronaut-c0", 4) == __import__("zlib").crc32(b"astronaut-c0") % 4
    assert parse_shard({"index": 2, "count": 3}) == (2, 3) and parse_shard(None) is None
    for bad in ({"index": 3, "count": 3}, {"index": 0}, {"index": 0, "count": 0}):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_work_store_redoes_changed_or_unfinished_samples(tmp_path: Path):
    store = WorkStore(str(tmp_path / "work"))
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    fp = fingerprint({"seed": 0}, image)
    assert store.load_record("s1", fp) is None
    record = store.save("s1", {"image": image}, {"row": {"n": np.int64(3), "r": 0.1}}, fp)
    fresh = WorkStore(str(tmp_path / "work"))
    loaded = fresh.load_record("s1", fp)
    assert loaded == record and loaded["data"]["row"] == {"n": 3, "r": 0.1}
    assert np.array_equal(fresh.load_array("s1", "image", loaded), image)
    assert fresh.load_record("s1", fingerprint({"seed": 1}, image)) is None  # other parameters: redo
    (tmp_path / "work" / "s1.json").unlink()  # array written, record not: half-finished
    assert WorkStore(str(tmp_path / "work")).load_record("s1", fp) is None
    store.save("s1", {"image": image}, {}, fp)
    tampered = WorkStore(str(tmp_path / "work"))
    np.save(tmp_path / "work" / "s1" / "image.npy", image[::-1])
    with pytest.raises(ValueError, match="s1/image.npy does not match its record"):
        tampered.load_array("s1", "image", tampered.load_record("s1", fp))
    with pytest.raises(ValueError, match="cannot name a work-store file"):
        store.save("../evil", {}, {}, fp)


def test_work_store_on_s3_resumes_from_one_listing(monkeypatch):
    """The same store on S3 (moto's server on loopback), configured as under --env s3: keys from
    AWS_*, endpoint from EDITLENS_S3_ENDPOINT."""
    import boto3
    from moto.server import ThreadedMotoServer

    from pipelines.datasets import register_filesystems
    from flows.local_stack import free_port

    register_filesystems()  # all-or-nothing s3 writes
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(var, "test")
        monkeypatch.setenv("EDITLENS_S3_ENDPOINT", endpoint)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="work")
        image = np.arange(300, dtype=np.uint16).astype(np.uint8).reshape(10, 10, 3)
        fp = fingerprint("params", image)
        store = WorkStore("s3://work/data/04_feature/inpaint_work")
        store.save("a-v0", {"image": image, "label_map": image[..., 0]}, {"sample": {"n": 1}}, fp)
        again = WorkStore("s3://work/data/04_feature/inpaint_work")
        record = again.load_record("a-v0", fp)
        assert record is not None and record["data"] == {"sample": {"n": 1}}
        assert np.array_equal(again.load_array("a-v0", "image", record), image)
        assert again.load_record("b-v0", fp) is None
    finally:
        server.stop()


def test_perceive_resumes_with_the_same_regions_and_dataset_balance(tmp_path: Path):
    """Perceive's balancer counts carry from base to base: a resumed run replays the finished
    bases' choices into the counts, so the bases it redoes choose exactly as before."""
    import cv2
    import skimage.data

    from tests.stages import perceive_regions

    bases = {name: cv2.resize(getattr(skimage.data, name)(), (96, 96), interpolation=cv2.INTER_AREA)
             for name in ("astronaut", "chelsea", "coffee", "rocket")}
    loaders = {k: (lambda v=v: v) for k, v in bases.items()}
    params = {"seed": 0, "perceiver": "superpixel", "variants_per_base": 2, "iou_threshold": 0.7,
              "turn_count_weights": [1, 4, 5], "min_area_ratio": 0.01, "max_area_ratio": 0.7,
              "edit_type_weights": {"attribute": 1, "addition": 1, "removal": 1}, "balance": {"strength": 2.0}}
    none = pd.DataFrame(columns=["base_id"])
    want_masks, want = perceive_regions(loaders, none, params)
    stored = {**params, "work_dir": str(tmp_path / "work")}
    _, first = perceive_regions(loaders, none, stored)
    pd.testing.assert_frame_equal(first, want, check_exact=True)
    # a crash after the first two bases: coffee half-finished (masks written, no record), rocket not begun
    (tmp_path / "work" / "coffee.json").unlink()
    (tmp_path / "work" / "rocket.json").unlink()
    shutil.rmtree(tmp_path / "work" / "rocket")
    masks, resumed = perceive_regions(loaders, none, stored)
    pd.testing.assert_frame_equal(resumed, want, check_exact=True)
    assert set(masks) == set(want_masks)
    for region_id, loader in masks.items():
        assert np.array_equal(loader(), want_masks[region_id]())
    # the balancer mattered: without the replayed counts the redone bases would choose differently
    _, alone = perceive_regions({k: loaders[k] for k in ("coffee", "rocket")}, none, params)
    assert not alone.drop(columns=["area_bucket"]).equals(
        want[want["base_id"].isin(["coffee", "rocket"])].reset_index(drop=True).drop(columns=["area_bucket"]))


def test_filter_shards_share_one_scorer_and_merge_to_the_unsharded_table(tmp_path: Path):
    import cv2
    import skimage.data

    from models.cache import ModelCache
    from tests.stages import filter_samples

    photos = {n: cv2.resize(getattr(skimage.data, n)(), (64, 64)) for n in ("astronaut", "chelsea", "coffee", "rocket")}
    images = {**{f"{n}-v0": v for n, v in photos.items()}, **{f"{n}f-v0": v[:, ::-1].copy() for n, v in photos.items()}}
    samples = pd.DataFrame({"sample_id": list(images), "base_id": [k[:-3] for k in images],
                            "last_generator": "telea", "generators": [["telea"]] * len(images),
                            "edit_types": [["removal"]] * len(images)})
    loaders = {k: (lambda v=v: v) for k, v in images.items()}
    params = {"checks": [{"scorer": "brisque", "max": 60}], "work_dir": str(tmp_path / "work")}
    want = filter_samples(loaders, samples, {"checks": params["checks"]})[0]
    models = ModelCache()  # one worker process's cache (the catalog's model_cache)
    parts = [filter_samples(loaders, samples, {**params, "shard": {"index": i, "count": 2}}, model_cache=models)[0]
             for i in (0, 1)]
    assert sorted(pd.concat(parts)["sample_id"]) == sorted(samples["sample_id"])  # a partition
    assert models.keys() == [ModelCache.key("quality", "brisque", {})]  # both shard calls used one scorer
    records = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work").glob("*.json")}
    assert len(records) == len(samples)
    merged = filter_samples(loaders, samples, params)[0]  # the merge: every sample is scored already
    pd.testing.assert_frame_equal(merged, want, check_exact=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work").glob("*.json")} == records  # nothing redone


def test_a_hosts_share_of_shards_is_parsed_and_checked():
    from flows.sharded import parse_range, run_shard
    from flows.shards import shard_params

    assert parse_range("0-3,7,2", 8) == [0, 1, 2, 3, 7] and parse_range(None, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"shards \[8\] outside 0..7"):
        parse_range("6-8", 8)
    assert shard_params("inpaint", 1, 4, {"inpaint": {"seed": 3}}) == {"inpaint": {"seed": 3, "shard": {"index": 1, "count": 4}}}
    with pytest.raises(ValueError, match="shard index must be in 0..count-1"):
        shard_params("filter", 4, 4)
    with pytest.raises(ValueError, match="stage 'perceive' cannot be sharded"):
        run_shard("perceive", 0, 2, REPO)


@pytest.mark.slow
def test_dask_task_runner_fans_shards_out_to_worker_processes_and_builds_the_same_dataset(project_copy: Path):
    """``--task-runner dask``: shard tasks run in 2 local Dask worker processes (not the flow's),
    each keeping its models; the dataset is byte for byte the one a plain `kedro run` builds."""
    plain, dask = _project(project_copy, "plain"), _project(project_copy, "dask")
    reference = _kedro(plain)
    flow = _start(dask, [sys.executable, "-m", "flows.sharded", "--env", "tiny", "--num-shards", "3",
                         "--task-runner", "dask", "--workers", "2"])
    _finish(reference, plain, timeout=400)
    _finish(flow, dask, timeout=400)
    log = sorted(dask.glob("kedro-*.log"))[-1].read_text()
    result, _ = json.JSONDecoder().raw_decode(log[log.index("{\n"):])
    shards = result["inpaint.shards"] + result["filter.shards"]
    assert sorted(s["shard"] for s in result["inpaint.shards"]) == [0, 1, 2]
    pids = {s["pid"] for s in shards}
    assert len(pids) == 2 and flow.pid not in pids, pids  # two worker processes, neither the flow's
    n_samples = len(pd.read_parquet(plain / "data" / "04_feature" / "samples.parquet"))
    assert sum(s["samples"] for s in result["inpaint.shards"]) == n_samples
    want, got = _hashes(plain / "data"), _hashes(dask / "data")
    assert len([k for k in want if k.endswith(".png")]) == 2 * n_samples
    assert got == want


def test_task_runner_options_are_checked():
    from flows.sharded import make_task_runner, worker_thread_env

    assert make_task_runner("threads") is None
    with pytest.raises(ValueError, match="need --task-runner dask"):
        make_task_runner("threads", workers=2)
    with pytest.raises(ValueError, match="must be one of"):
        make_task_runner("ray")
    with pytest.raises(ValueError, match="--workers must be >= 1"):
        make_task_runner("dask", workers=0)
    with pytest.raises(ValueError, match="running cluster"):
        make_task_runner("dask", workers=2, address="tcp://127.0.0.1:8786")
    runner = make_task_runner("dask", workers=3)
    assert type(runner).__name__ == "DaskTaskRunner"
    assert runner.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "dashboard_address": None,
                                     "processes": True, "host": "127.0.0.1", "env": worker_thread_env()}
