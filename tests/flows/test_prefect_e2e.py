"""End to end on loopback: a real Prefect server, the `gpu` process work pool and a worker, the
`nightly` deployment of the generate flow created by `prefect deploy` from prefect.yaml, and the
Kedro catalog on moto's S3 server. The bucket is then read back with boto3 and the minio client."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from flows import local_stack

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET, E2E_ENV, GATE_ENV = "editlens", "e2e", "e2e_gate"  # as tests/flows/conftest.py makes them

GENERATE_GROUPS = ["ingest", "perceive", "inpaint", "filter", "split", "stats"]
GPU_GROUPS = {"perceive", "inpaint", "filter"}
FAST = {"retries": 1, "retry_backoff_s": 1, "timeouts_s": {"default": 300}}


def _run_and_wait(client, deployment, parameters, timeout_s=240):
    started = time.perf_counter()
    run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
    while time.perf_counter() - started < timeout_s:
        run = client.read_flow_run(run.id)
        if run.state is not None and run.state.is_final():
            return run, time.perf_counter() - started
        time.sleep(1)
    pytest.fail(f"flow run {run.id} not finished after {timeout_s} s: {run.state}")


def _task_runs(client, flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run for run in runs}


def _bucket_listing(endpoint):
    """{key: size} from boto3 and from the minio client (two independent S3 clients)."""
    import boto3
    from minio import Minio

    creds = local_stack.s3_env(endpoint)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    by_boto = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        by_boto.update({obj["Key"]: obj["Size"] for obj in page.get("Contents", [])})
    minio = Minio(endpoint.removeprefix("http://"), access_key=creds["AWS_ACCESS_KEY_ID"],
                  secret_key=creds["AWS_SECRET_ACCESS_KEY"], secure=False, region="us-east-1")
    by_minio = {obj.object_name: obj.size for obj in minio.list_objects(BUCKET, recursive=True)}
    return by_boto, by_minio, minio


def test_deployment_from_prefect_yaml(nightly, client):
    assert nightly.work_pool_name == "gpu"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.parameters["env"] == "s3" and "orchestration" in nightly.parameters
    pool = client.read_work_pool("gpu")
    assert pool.type == "process"
    assert client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 1


def test_nightly_generate_runs_on_the_gpu_pool_against_s3(nightly, client, s3_endpoint, e2e_project, stack_dir,
                                                           flow_run_logs):
    run, seconds = _run_and_wait(client, nightly, {"env": E2E_ENV, "project_path": str(e2e_project),
                                                   "orchestration": FAST})
    print(f"\n[timing] generate deployment run (trigger -> Completed) {seconds:.1f} s")
    logs = flow_run_logs(run.id, wait_for="Completed node: assemble_samples")
    assert run.state.is_completed(), f"{run.state}\n" + "\n".join(log.message for log in logs)[-6000:]

    # the S3 secret reached the flow run through the worker's environment only: it is in none of
    # the run's parameters, the deployment, the Prefect logs or the worker's own output
    secret = local_stack.s3_env(s3_endpoint)["AWS_SECRET_ACCESS_KEY"]
    deployment = client.read_deployment(nightly.id)
    for what, text in [("flow run parameters", json.dumps(run.parameters, default=str)),
                       ("deployment", deployment.model_dump_json()),
                       ("flow run logs", "\n".join(log.message for log in logs)),
                       ("worker output", (stack_dir / "worker.log").read_text(errors="replace"))]:
        assert secret not in text, f"the S3 secret appears in the {what}"

    # one task per stage, GPU stages tagged, all done once
    tasks = _task_runs(client, run.id)
    assert sorted(tasks) == sorted(GENERATE_GROUPS)
    for name, task_run in tasks.items():
        assert task_run.state.is_completed(), name
        assert ("gpu" in task_run.tags) == (name in GPU_GROUPS), (name, task_run.tags)
    assert client.read_concurrency_limit_by_tag("gpu").active_slots == []

    # Kedro's own records reach the Prefect API (conf/base/logging.yml), tagged with their task
    kedro_logs = [log for log in logs if log.name.startswith(("kedro", "pipelines"))]
    assert any("Completed node: assemble_samples" in log.message for log in kedro_logs)
    assert any("gate ingest passed" in log.message and log.task_run_id == tasks["ingest"].id for log in kedro_logs)

    # the bucket, listed by two clients, holds exactly what the manifests say
    by_boto, by_minio, minio = _bucket_listing(s3_endpoint)
    assert by_boto == by_minio
    data = {key: size for key, size in by_boto.items() if key.startswith("data/")}
    manifests = {key: json.loads(minio.get_object(BUCKET, key).read())
                 for key in data if key.startswith("data/manifests/")}
    assert sorted(manifests) == sorted(f"data/manifests/{g}.json" for g in GENERATE_GROUPS)
    listed = {}
    for manifest in manifests.values():
        assert manifest["root"] == f"s3://{BUCKET}/data" and manifest["flow_run_id"] == str(run.id)
        for obj in manifest["objects"]:
            listed[f"data/{obj['key']}"] = obj
    assert set(listed) == set(data) - set(manifests)
    for key, obj in listed.items():
        payload = minio.get_object(BUCKET, key).read()
        assert (len(payload), hashlib.sha256(payload).hexdigest()) == (obj["size"], obj["sha256"]) == (data[key], obj["sha256"])

    # the expected datasets, in the tiny env's numbers
    def keys(prefix):
        return sorted(k.removeprefix(prefix) for k in data if k.startswith(prefix))

    assert len(keys("data/02_intermediate/base_images/")) == 6
    edited = keys("data/04_feature/edited_images/")
    assert edited and edited == keys("data/04_feature/label_maps/")
    for table in ("02_intermediate/base_manifest", "03_primary/regions", "04_feature/samples",
                  "04_feature/provenance", "05_model_input/filtered_samples", "05_model_input/splits"):
        assert f"data/{table}.parquet" in data, table
    assert {f"{g}.md" for g in ("ingest", "perceive", "inpaint", "filter", "split")} <= set(keys("data/08_reporting/gates/"))
    assert listed["data/02_intermediate/base_manifest.parquet"]["datasets"] == ["base_manifest"]

    # nothing but the (local by design) tiny-sd model folder was written on local disk
    local = [p for p in (e2e_project / "data").rglob("*") if p.is_file()] if (e2e_project / "data").exists() else []
    assert all("06_models/tiny-sd-inpaint" in str(p) for p in local), local[:5]


def test_failing_gate_fails_the_flow_run_with_its_message(nightly, client, s3_endpoint, e2e_project, flow_run_logs):
    shard = "gate-check"
    run, seconds = _run_and_wait(client, nightly, {"env": GATE_ENV, "project_path": str(e2e_project),
                                                   "shard": shard, "orchestration": FAST})
    print(f"\n[timing] failing-gate deployment run (trigger -> Failed) {seconds:.1f} s")
    assert run.state.is_failed(), run.state
    gate_message = "data quality gate 'ingest' failed after node 'ingest_photos'"
    messages = "\n".join(log.message for log in flow_run_logs(run.id, wait_for=gate_message))
    assert gate_message in messages
    assert "expect_table_row_count_to_be_between" in messages

    tasks = _task_runs(client, run.id)
    assert list(tasks) == ["ingest"] and tasks["ingest"].state.is_failed()
    assert tasks["ingest"].run_count == 1  # a gate failure is not retried

    # the shard's data root: the gate's report is there, no manifest (the stage never committed)
    by_boto, _, _ = _bucket_listing(s3_endpoint)
    prefix = f"data/shards/{shard}/"
    assert f"{prefix}08_reporting/gates/ingest.md" in by_boto
    assert not any(k.startswith(f"{prefix}manifests/") for k in by_boto)
    assert not any(k.startswith(f"{prefix}02_intermediate/") for k in by_boto)
