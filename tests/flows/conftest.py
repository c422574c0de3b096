"""Real components on loopback for the flow tests: moto's S3 server, a Prefect server, the `gpu`
process work pool with a worker, and a throwaway Kedro project whose `e2e` environment is the
`tiny` sizes with every dataset in the bucket. Every process is started in its own session and
stopped with its children in the fixtures' finalizers, also when a test fails; and each gets
SIGTERM from the kernel if the test process itself is killed (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from flows import local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "editlens"
E2E_ENV, GATE_ENV = "e2e", "e2e_gate"


def _stop(service: local_stack.Service) -> None:
    local_stack.stop_process_tree(service.process.pid)


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def stack_env(stack_dir: Path) -> dict[str, str]:
    return local_stack.base_env(stack_dir / "prefect-home")


@pytest.fixture(scope="module")
def s3_endpoint(stack_dir, stack_env):
    started = time.perf_counter()
    service, endpoint = local_stack.start_s3(stack_dir, stack_env, local_stack.free_port(), BUCKET,
                                             die_with_parent=True)
    try:
        print(f"\n[timing] S3 endpoint (moto) up in {time.perf_counter() - started:.1f} s")
        yield endpoint
    finally:
        _stop(service)


@pytest.fixture(scope="module")
def prefect_api(stack_dir, stack_env):
    started = time.perf_counter()
    service, api_url = local_stack.start_prefect_server(stack_dir, stack_env, local_stack.free_port(),
                                                        ui=False, scheduler=False, die_with_parent=True)
    try:
        print(f"\n[timing] Prefect server up in {time.perf_counter() - started:.1f} s")
        yield api_url
    finally:
        _stop(service)


@pytest.fixture(scope="module")
def gpu_worker(stack_dir, stack_env, prefect_api, s3_endpoint):
    local_stack.setup_work_pool(prefect_api)
    service = local_stack.start_worker(stack_dir, {**stack_env, **local_stack.s3_env(s3_endpoint)}, prefect_api,
                                       poll_s=1.0, die_with_parent=True)
    try:
        yield service
    finally:
        _stop(service)


def _tiny_s3_env(conf: Path, name: str) -> Path:
    """conf/<name> = conf/tiny's files + conf/s3's credentials + globals (tiny size, bucket root)."""
    env = conf / name
    shutil.copytree(conf / "tiny", env)
    shutil.copy(REPO_ROOT / "conf" / "s3" / "credentials.yml", env / "credentials.yml")
    tiny_globals = yaml.safe_load((conf / "tiny" / "globals.yml").read_text()) or {}
    s3_globals = yaml.safe_load((REPO_ROOT / "conf" / "s3" / "globals.yml").read_text()) or {}
    s3_globals["data_root"] = s3_globals["data_root"].replace("s3://editlens/", f"s3://{BUCKET}/")
    (env / "globals.yml").write_text(yaml.safe_dump({**tiny_globals, "data_root": s3_globals["data_root"]}))
    return env


@pytest.fixture(scope="module")
def e2e_project(tmp_path_factory) -> Path:
    """pyproject.toml + conf/ in a temp folder (the code comes from the checkout via the worker's
    EDITLENS_HOME). Only the tiny-sd model folder, a local path by design, is written here."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    shutil.copy(REPO_ROOT / "conf" / "base" / "credentials.yml", project / "conf" / "base" / "credentials.yml")
    (project / "conf" / "local").mkdir(exist_ok=True)
    (project / "src").mkdir()
    _tiny_s3_env(project / "conf", E2E_ENV)
    gate_env = _tiny_s3_env(project / "conf", GATE_ENV)
    # A data quality gate that must fail: the tiny ingest makes 6 base images.
    (gate_env / "gates.yml").write_text(yaml.safe_dump({"gates": {"ingest": {"tables": {"manifest": [
        {"expectation": "expect_table_row_count_to_be_between", "min_value": 1, "max_value": 2,
         "why": "e2e: at most 2 base images (fails on purpose)"}]}}}}))
    return project


@pytest.fixture(scope="module")
def client(prefect_api):
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(prefect_api) as api:
        yield api


@pytest.fixture(scope="module")
def nightly(prefect_api, stack_env, gpu_worker, client):
    """The `nightly` deployment of the generate flow: `prefect deploy --name nightly` from the
    checkout (prefect.yaml), as the README says."""
    started = time.perf_counter()
    done = subprocess.run([str(local_stack.VENV_BIN / "prefect"), "--no-prompt", "deploy", "--name", "nightly"],
                          cwd=REPO_ROOT, env={**stack_env, "PREFECT_API_URL": prefect_api},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"\n[timing] prefect deploy in {time.perf_counter() - started:.1f} s")
    return client.read_deployment_by_name("editlens-generate/nightly")


@pytest.fixture(scope="module")
def flow_run_logs(client):
    """``read(flow_run_id, wait_for=None, timeout_s=30)``: every log record of a flow run (its
    tasks' included, oldest first), as the UI shows them. A finished run's last records reach the
    API after its final state (the run's process sends logs in batches), so with ``wait_for`` the
    records are read again until one contains that text or ``timeout_s`` passes."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    def read_all(flow_run_id):
        logs = []
        while True:
            batch = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                                     limit=200, offset=len(logs), sort=LogSort.TIMESTAMP_ASC)
            logs.extend(batch)
            if len(batch) < 200:
                return logs

    def read(flow_run_id, wait_for: str | None = None, timeout_s: float = 30):
        deadline = time.monotonic() + timeout_s
        logs = read_all(flow_run_id)
        while wait_for is not None and not any(wait_for in log.message for log in logs) and time.monotonic() < deadline:
            time.sleep(1)
            logs = read_all(flow_run_id)
        return logs

    return read
