"""The pieces of the Prefect flows that need no Prefect server: node groups and hand-offs, the
retry rule, shards, manifests, and all-or-nothing writes to S3 (moto's server on loopback)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Pipeline, node

from flows.manifest import (build_manifest, changed_keys, data_root_of, dataset_prefixes, read_manifests,
                            remove_manifest, snapshot, write_manifest)
from flows.node_groups import NodeGroup, check_handoffs, handoffs, node_groups
from flows.shards import check_shard_name, shard_conf_source
from pipelines.pipeline_registry import stages_of


def _identity(x):
    return x


# ---- node groups


@pytest.mark.parametrize("name, stages", [("generate", stages_of("generate")), ("train", ["train"]),
                                          ("evaluate", ["evaluate"]), ("full", stages_of("__default__"))])
def test_user_facing_pipelines_become_one_group_per_stage(name, stages):
    groups = node_groups(name)
    assert [g.name for g in groups] == stages
    assert all(g.run_args() == {"pipeline_name": g.stage} for g in groups)


def test_unknown_pipeline_names_the_known_ones():
    with pytest.raises(KeyError, match="known"):
        node_groups("nope")


def test_namespaces_inside_a_stage_become_their_own_groups(monkeypatch):
    import pipelines.pipeline_registry as registry

    def branch(namespace):  # a namespaced modular pipeline, the way Kedro builds them
        return Pipeline([node(_identity, "raw", "x", name="make")], namespace=namespace, inputs="raw")

    stage = branch("a") + branch("b") + Pipeline([node(_identity, "a.x", "joined", name="join")])
    monkeypatch.setattr(registry, "stages_of", lambda name: ["toy"])
    groups = node_groups("toy", registered={"toy": stage})
    assert [g.name for g in groups] == ["toy.a", "toy.b", "toy.main"]
    assert groups[0].run_args() == {"pipeline_name": "toy", "node_names": ["a.make"]}
    assert handoffs(groups) == {"a.x": ("toy.a", "toy.main")}


def test_datasets_crossing_tasks_must_be_persisted():
    groups = [NodeGroup("one", "one", outputs=frozenset({"table", "scratch"})),
              NodeGroup("two", "two", inputs=frozenset({"table", "scratch", "raw"}))]
    catalog = DataCatalog({"table": MemoryDataset(), "raw": MemoryDataset()})
    with pytest.raises(ValueError) as err:
        check_handoffs(groups, catalog)
    message = str(err.value)
    assert "scratch (written by one, read by two): not in the catalog" in message
    assert "table (written by one, read by two): kedro.io.memory_dataset.MemoryDataset is not persisted" in message
    assert "raw" not in message  # not written by a task: an input of the whole run


def test_every_hand_off_of_the_full_pipeline_is_in_the_catalog(project_copy: Path):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny") as session:
        catalog = session.load_context().catalog
    groups = node_groups("full")
    assert {"splits", "detector_binary", "base_manifest"} <= set(handoffs(groups))
    check_handoffs(groups, catalog)


# ---- retries: storage and network errors only


def test_retry_rule():
    from botocore.exceptions import EndpointConnectionError
    from prefect.task_engine import TaskRunTimeoutError

    from flows.kedro_flow import is_transient_storage_error
    from pipelines.validation import GateFailure

    def wrapped(cause):
        try:
            try:
                raise cause
            except Exception as exc:
                raise DatasetError("Failed while saving data to dataset splits") from exc
        except DatasetError as exc:
            return exc

    assert is_transient_storage_error(ConnectionResetError("reset by peer"))
    assert is_transient_storage_error(wrapped(EndpointConnectionError(endpoint_url="http://127.0.0.1:9")))
    assert is_transient_storage_error(wrapped(TimeoutError("read timed out")))
    assert not is_transient_storage_error(wrapped(FileNotFoundError("data/01_raw/x")))
    assert not is_transient_storage_error(ValueError("split.ratios must be non-negative and sum to 1"))
    assert not is_transient_storage_error(GateFailure.__new__(GateFailure))
    assert not is_transient_storage_error(TaskRunTimeoutError("too slow"))
    assert not is_transient_storage_error(None)


def test_orchestration_options():
    from flows.kedro_flow import Orchestration

    options = Orchestration(timeouts_s={"default": 60, "train": 600, "inpaint": 0})
    assert options.timeout_for(NodeGroup("train", "train")) == 600
    assert options.timeout_for(NodeGroup("ingest", "ingest")) == 60
    assert options.timeout_for(NodeGroup("inpaint", "inpaint")) is None  # 0 = no timeout
    assert "gpu" in options.tags_for(NodeGroup("inpaint", "inpaint"))
    assert "gpu" not in options.tags_for(NodeGroup("split", "split"))


# ---- shards


def test_a_shard_gets_its_own_data_root_and_the_project_conf_is_untouched(project_copy: Path):
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    before = sorted((p, p.read_bytes()) for p in (project_copy / "conf").rglob("*") if p.is_file())
    with shard_conf_source(project_copy, "tiny", "night-07") as conf_source:
        loader = settings.CONFIG_LOADER_CLASS(conf_source, env="tiny", **settings.CONFIG_LOADER_ARGS)
        assert loader["globals"]["data_root"] == "data/shards/night-07"
        assert loader["globals"]["image_size"] == 64  # the env's other globals survive
        assert loader["catalog"]["splits"]["filepath"] == "data/shards/night-07/05_model_input/splits.parquet"
    assert not Path(conf_source).exists()
    assert sorted((p, p.read_bytes()) for p in (project_copy / "conf").rglob("*") if p.is_file()) == before
    with shard_conf_source(project_copy, "tiny", None) as conf_source:
        assert conf_source is None


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-x", "x" * 65, "a b"])
def test_shard_names_are_single_safe_path_segments(bad):
    with pytest.raises(ValueError, match="shard"):
        check_shard_name(bad)


# ---- manifests


class _Loader(dict):
    pass


def test_manifest_lists_what_a_stage_wrote(tmp_path: Path):
    project = tmp_path
    (project / "data" / "02_intermediate" / "base_images").mkdir(parents=True)
    old = project / "data" / "02_intermediate" / "base_manifest.parquet"
    old.write_bytes(b"old")
    loader = _Loader(globals={"data_root": "data"}, credentials={})
    root = data_root_of(loader, str(project))
    assert root.url == str(project / "data")
    before = snapshot(root)

    (project / "data" / "02_intermediate" / "base_images" / "a.png").write_bytes(b"png-a")
    (project / "data" / "02_intermediate" / "base_images" / ".tmp-b.png").write_bytes(b"half")
    (project / "data" / "08_reporting").mkdir()
    (project / "data" / "08_reporting" / "notes.md").write_bytes(b"# side output")
    written = changed_keys(before, snapshot(root))
    assert written == ["02_intermediate/base_images/a.png", "08_reporting/notes.md"]

    catalog = {"_png": {"path": "data/anchor"},
               "base_images": {"type": "partitions.PartitionedDataset", "path": "data/02_intermediate/base_images"},
               "base_manifest": {"filepath": "data/02_intermediate/base_manifest.parquet"},
               "elsewhere": {"filepath": "/somewhere/else.json"}}
    prefixes = dataset_prefixes(catalog, root, str(project))
    assert prefixes == {"base_images": "02_intermediate/base_images",
                        "base_manifest": "02_intermediate/base_manifest.parquet"}
    manifest = build_manifest(root, written, prefixes, {"group": "ingest"})
    assert [(o["key"], o["datasets"], o["size"]) for o in manifest["objects"]] == [
        ("02_intermediate/base_images/a.png", ["base_images"], 5), ("08_reporting/notes.md", [], 13)]
    url = write_manifest(root, "ingest", manifest)
    assert url == str(project / "data" / "manifests" / "ingest.json")
    assert read_manifests(root)["ingest"]["objects"][0]["sha256"] == manifest["objects"][0]["sha256"]
    assert "manifests/ingest.json" not in snapshot(root)  # manifests never list themselves
    remove_manifest(root, "ingest")
    assert read_manifests(root) == {}


# ---- all-or-nothing writes on S3


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    from flows.local_stack import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_a_failed_save_on_s3_leaves_the_previous_object(s3_server, monkeypatch):
    import boto3
    import fsspec
    import pandas as pd
    from kedro_datasets.json import JSONDataset
    from kedro_datasets.pandas import ParquetDataset

    from pipelines.datasets import register_filesystems

    register_filesystems()  # the all-or-nothing s3 filesystem

    assert fsspec.get_filesystem_class("s3").__name__ == "AllOrNothingS3FileSystem"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "test")
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="safe")
    credentials = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": s3_server}}

    metrics = JSONDataset(filepath="s3://safe/data/metrics.json", credentials=credentials)
    metrics.save({"miou": [0.5] * 2000})
    good = s3.get_object(Bucket="safe", Key="data/metrics.json")["Body"].read()
    with pytest.raises(DatasetError):
        metrics.save({"miou": [0.6] * 2000, "bad": object()})  # json.dump fails half-way
    assert s3.get_object(Bucket="safe", Key="data/metrics.json")["Body"].read() == good

    table = ParquetDataset(filepath="s3://safe/data/splits.parquet", credentials=credentials)
    table.save(pd.DataFrame({"split": ["train", "val"]}))
    with pytest.raises(DatasetError):
        table.save(pd.DataFrame({"split": [1, "x", object()]}))
    assert list(table.load()["split"]) == ["train", "val"]

    # a file written while an earlier exception is being handled is not a failed write
    fs = metrics._fs
    try:
        raise RuntimeError("gate failed")
    except RuntimeError:
        with fs.open("safe/data/report.md", "w") as report:
            report.write("# report")
    assert s3.get_object(Bucket="safe", Key="data/report.md")["Body"].read() == b"# report"
