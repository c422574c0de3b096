"""`make up` / `make status` / `make down` (python -m flows.local_stack) on free loopback ports with
a temporary PREFECT_HOME: the real Prefect server, the `gpu` process work pool with its concurrency
limit and a polling worker, moto's S3 server with the bucket; then everything stopped, children
included. `down` also runs in the finalizer, so nothing outlives a failing test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import local_stack

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
    return subprocess.run([sys.executable, "-m", "flows.local_stack", *args, "--prefect-home", str(home)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _env_sh(path: Path) -> dict[str, str]:
    lines = [line.removeprefix("export ") for line in path.read_text().splitlines() if line.startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    api_port, s3_port = local_stack.free_port(), local_stack.free_port()
    started = time.perf_counter()
    try:
        up = _cli(home, "up", "--api-port", str(api_port), "--s3-port", str(s3_port))
        print(f"\n[timing] make up (server + pool + worker + S3) {time.perf_counter() - started:.1f} s")
        yield home, up, api_port, s3_port
    finally:
        _cli(home, "down")


def test_up_starts_server_pool_worker_and_s3_and_says_how_to_use_them(stack):
    home, up, api_port, s3_port = stack
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    env = _env_sh(home / "stack" / "env.sh")
    assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{api_port}/api"
    assert env["EDITLENS_S3_ENDPOINT"] == f"http://127.0.0.1:{s3_port}"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "EDITLENS_HOME"} <= set(env)
    for key, value in env.items():  # the usage printed for the user's shell
        assert f"export {key}={value}" in up.stdout, key
    assert "make down" in up.stdout and "prefect --no-prompt deploy" in up.stdout
    saved = json.loads((home / "stack" / "stack.json").read_text())
    assert (saved["api_port"], saved["s3_port"], saved["bucket"]) == (api_port, s3_port, "editlens")

    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        assert client.read_work_pool("gpu").type == "process"
        assert client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 1
        deadline = time.monotonic() + 60
        while not (workers := client.read_workers_for_work_pool("gpu")) and time.monotonic() < deadline:
            time.sleep(1)
        assert workers, "no worker polled the gpu pool within 60 s:\n" + (home / "stack" / "worker.log").read_text()[-2000:]

    import boto3

    s3 = boto3.client("s3", endpoint_url=env["EDITLENS_S3_ENDPOINT"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    assert "editlens" in {b["Name"] for b in s3.list_buckets()["Buckets"]}

    # the cluster pool's template, as the README creates it, accepted by this real server
    template = REPO_ROOT / "infra" / "k8s" / "base-job-template.json"
    created = subprocess.run([str(Path(sys.executable).parent / "prefect"), "work-pool", "create", "gpu-k8s",
                              "--type", "kubernetes", "--base-job-template", str(template)],
                             env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": env["PREFECT_API_URL"]},
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        pool = client.read_work_pool("gpu-k8s")
    assert pool.type == "kubernetes" and pool.base_job_template == json.loads(template.read_text())

    status = _cli(home, "status")
    assert json.loads(status.stdout).keys() == {"prefect-server", "s3", "worker"}
    assert all(v.startswith("running") for v in json.loads(status.stdout).values()), status.stdout

    again = _cli(home, "up", "--api-port", str(api_port), "--s3-port", str(s3_port))
    assert again.returncode != 0 and "already running" in again.stderr


def test_down_stops_every_process_and_its_children(stack):
    home, up, _, _ = stack
    assert up.returncode == 0, up.stderr[-2000:]
    pids = [int(p.read_text()) for p in (home / "stack").glob("*.pid")]
    everything = [*pids, *(child for pid in pids for child in local_stack._descendants(pid))]
    assert len(pids) == 3 and all(local_stack._alive(p) for p in pids)
    down = _cli(home, "down")
    assert down.returncode == 0 and down.stdout.count("pid") == 3, down.stdout + down.stderr
    assert not [p for p in everything if local_stack._alive(p)], "left running after down"
    assert not list((home / "stack").glob("*.pid")) and not (home / "stack" / "env.sh").exists()
    assert "nothing was running" in _cli(home, "down").stdout
