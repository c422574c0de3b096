"""A local orchestration stack on loopback: Prefect server, the ``gpu`` work pool with a worker,
and an S3 endpoint for ``kedro run --env s3``. ``make up`` / ``make down`` call this module; the
tests start the same pieces on free ports.

The S3 endpoint is moto's server (an S3 emulator speaking the real protocol over HTTP), because no
MinIO server can be installed from these machines' package registries; for a real MinIO use
infra/docker-compose.yml: the catalog only sees ``EDITLENS_S3_ENDPOINT``.

    python -m flows.local_stack up [--api-port 4200] [--s3-port 9000]   # = make up; pids in .prefect/stack/
    python -m flows.local_stack status                                   # = make status
    python -m flows.local_stack down                                     # = make down (children too)
    source .prefect/stack/env.sh     # PREFECT_API_URL, AWS_*, EDITLENS_S3_ENDPOINT for your shell
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
POOL = "gpu"
GPU_TAG = "gpu"
BUCKET = "editlens"
# Credentials of the local S3 emulator (it accepts any); never real secrets.
LOCAL_S3_KEY, LOCAL_S3_SECRET = "editlens-local", "editlens-local-secret"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc), deepest last. Prefect starts flow-run
    processes in their own sessions, so killing a worker's process group does not reach them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_process_tree(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM ``pid``, its process group and every descendant; SIGKILL what is left after
    ``timeout_s``. Only ever given pids this module started."""
    targets = [pid, *_descendants(pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in targets:
            try:
                if target == pid:
                    os.killpg(target, sig)  # started with start_new_session: pgid == pid
                else:
                    os.kill(target, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + (timeout_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(_alive(t) for t in targets):
            time.sleep(0.1)
            try:
                os.waitpid(pid, os.WNOHANG)  # reap our own child if it is one
            except ChildProcessError:
                pass
        if not any(_alive(t) for t in targets):
            return


@dataclass
class Service:
    """A background process of the stack: its pid and log live in ``state_dir``."""

    name: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_service(name: str, command: list[str], state_dir: Path, env: dict[str, str],
                  cwd: Path | None = None, die_with_parent: bool = False) -> Service:
    """Start ``command`` in its own session (so it and its children can be stopped together);
    stdout and stderr go to ``state_dir/<name>.log``, the pid to ``state_dir/<name>.pid``.
    ``die_with_parent`` (Linux): the service gets SIGTERM when the starting process dies, even
    killed with SIGKILL, so a test run that is killed leaves no server behind."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd or state_dir,
                                   start_new_session=True,
                                   preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None)
    (state_dir / f"{name}.pid").write_text(str(process.pid))
    return Service(name, process, log)


def wait_until_ready(url: str, service: Service, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 2xx; raise with the service's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{service.name} not ready at {url} after {timeout_s:.0f} s:\n{service.log_tail()}")


def base_env(prefect_home: Path) -> dict[str, str]:
    """Environment of every stack process: offline switches, Prefect's state in ``prefect_home``,
    the project importable."""
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "src")]),
    })
    env.pop("PREFECT_API_URL", None)
    return env


def _stop_on_failure(service: Service, ready) -> None:
    """Run ``ready()``; if it raises, stop ``service`` (and its children) before re-raising."""
    try:
        ready()
    except BaseException:
        stop_process_tree(service.process.pid)
        raise


def start_prefect_server(state_dir: Path, env: dict[str, str], port: int, ui: bool = True,
                         scheduler: bool = True, die_with_parent: bool = False) -> tuple[Service, str]:
    """``prefect server start`` on 127.0.0.1:``port``; returns the service and its API URL."""
    command = [str(VENV_BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(port),
               "--ui" if ui else "--no-ui", "--scheduler" if scheduler else "--no-scheduler", "--analytics-off"]
    service = start_service("prefect-server", command, state_dir, env, die_with_parent=die_with_parent)
    api_url = f"http://{HOST}:{port}/api"
    _stop_on_failure(service, lambda: wait_until_ready(f"{api_url}/health", service))
    return service, api_url


def start_s3(state_dir: Path, env: dict[str, str], port: int, bucket: str = BUCKET,
             die_with_parent: bool = False) -> tuple[Service, str]:
    """moto's S3 server on 127.0.0.1:``port`` with ``bucket`` created; returns it and its endpoint."""
    service = start_service("s3", [str(VENV_BIN / "moto_server"), "-H", HOST, "-p", str(port)], state_dir, env,
                            die_with_parent=die_with_parent)
    endpoint = f"http://{HOST}:{port}"
    _stop_on_failure(service, lambda: (wait_until_ready(f"{endpoint}/moto-api/", service),
                                       create_bucket(endpoint, bucket)))
    return service, endpoint


def create_bucket(endpoint: str, bucket: str, key: str = LOCAL_S3_KEY, secret: str = LOCAL_S3_SECRET) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                          region_name="us-east-1")
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def s3_env(endpoint: str) -> dict[str, str]:
    """What conf/s3/credentials.yml reads, for the local emulator; plus botocore's own
    ``AWS_ENDPOINT_URL_S3``, so any S3 client opened without the catalog's credentials (the aws
    CLI, a bare ``s3fs``/``fsspec`` filesystem) reaches the same endpoint."""
    return {"AWS_ACCESS_KEY_ID": LOCAL_S3_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1", "EDITLENS_S3_ENDPOINT": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}


def setup_work_pool(api_url: str, pool: str = POOL, gpu_slots: int = 1) -> None:
    """Create the ``pool`` process work pool (if missing) and the concurrency limit on the ``gpu``
    task tag (``gpu_slots`` tasks at once: one per GPU of the worker machine)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with SyncPrefectClient(api_url) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
                description="EditLens flows; tasks tagged 'gpu' share the gpu concurrency limit"))
        client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=gpu_slots)
        if not client.read_automations_by_name(ZOMBIE_AUTOMATION):
            create_zombie_automation(client)


# A worker killed with its flow run leaves nobody to report the run: Prefect's documented zombie
# detection is an automation that crashes a flow run whose heartbeats stop. The runs send one every
# HEARTBEAT_S (prefect.yaml's PREFECT_FLOWS_HEARTBEAT_FREQUENCY; 30 s is Prefect's minimum); three
# missed heartbeats mark the run Crashed, so a re-run can take over its work.
HEARTBEAT_S = 30
ZOMBIE_AFTER_S = 90
ZOMBIE_AUTOMATION = "editlens: crash flow runs whose heartbeats stopped"


def create_zombie_automation(client: Any, after_s: float = ZOMBIE_AFTER_S, name: str = ZOMBIE_AUTOMATION) -> Any:
    """Create the automation that sets a flow run Crashed when no heartbeat (and no final state)
    arrived for ``after_s`` seconds; ``client`` is a SyncPrefectClient. Returns its id."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    return client.create_automation(AutomationCore(
        name=name,
        trigger=EventTrigger(
            posture=Posture.Proactive, match={"prefect.resource.id": ["prefect.flow-run.*"]},
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"}, threshold=1, within=timedelta(seconds=after_s)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"no heartbeat for {after_s:g} s: the flow run's worker or process died")]))


def start_worker(state_dir: Path, env: dict[str, str], api_url: str, pool: str = POOL,
                 poll_s: float = 5.0, die_with_parent: bool = False) -> Service:
    """A process worker on ``pool``; its flow runs execute this checkout (EDITLENS_HOME)."""
    worker_env = {**env, "PREFECT_API_URL": api_url, "EDITLENS_HOME": str(PROJECT_ROOT),
                  "PREFECT_WORKER_QUERY_SECONDS": str(poll_s), "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    command = [str(VENV_BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
               "--name", f"{pool}-worker-{os.getpid()}"]
    return start_service("worker", command, state_dir, worker_env, die_with_parent=die_with_parent)


# ---- make up / make down

def _state_dir(prefect_home: Path) -> Path:
    return prefect_home / "stack"


def up(prefect_home: Path, api_port: int, s3_port: int, bucket: str = BUCKET) -> dict[str, str]:
    state = _state_dir(prefect_home)
    if any(_alive(int(p.read_text())) for p in state.glob("*.pid")):
        raise SystemExit(f"a stack is already running (pids in {state}); `make down` first")
    env = base_env(prefect_home)
    started: list[Service] = []
    try:
        s3, endpoint = start_s3(state, env, s3_port, bucket)
        started.append(s3)
        server, api_url = start_prefect_server(state, env, api_port)
        started.append(server)
        setup_work_pool(api_url)
        started.append(start_worker(state, {**env, **s3_env(endpoint)}, api_url))
    except BaseException:
        for service in reversed(started):
            stop_process_tree(service.process.pid)
        raise
    exports = {"PREFECT_API_URL": api_url, **s3_env(endpoint), "EDITLENS_HOME": str(PROJECT_ROOT)}
    (state / "env.sh").write_text("".join(f"export {k}={v}\n" for k, v in exports.items()))
    (state / "stack.json").write_text(json.dumps({
        "api_url": api_url, "api_port": api_port, "s3_endpoint": endpoint, "s3_port": s3_port, "bucket": bucket,
        "pids": {s.name: s.process.pid for s in started}}, indent=2))
    return exports


def down(prefect_home: Path) -> list[str]:
    state = _state_dir(prefect_home)
    stopped = []
    for name in ("worker", "prefect-server", "s3"):  # the worker first: it may still be running flows
        pid_file = state / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if _alive(pid) and _is_ours(pid):
            stop_process_tree(pid)
            stopped.append(f"{name} (pid {pid})")
        pid_file.unlink()
    for leftover in ("env.sh", "stack.json"):
        (state / leftover).unlink(missing_ok=True)
    return stopped


def _is_ours(pid: int) -> bool:
    """A pid file may outlive its process (reboot): only stop a pid that still runs one of the
    stack's programs from this venv."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(str(VENV_BIN / program) in command for program in ("prefect", "moto_server"))


def status(prefect_home: Path) -> dict[str, str]:
    state = _state_dir(prefect_home)
    return {p.stem: ("running" if _alive(int(p.read_text())) else "dead") + f" (pid {p.read_text()})"
            for p in sorted(state.glob("*.pid"))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--prefect-home", default=os.environ.get("PREFECT_HOME", str(PROJECT_ROOT / ".prefect")))
    parser.add_argument("--api-port", type=int, default=4200)
    parser.add_argument("--s3-port", type=int, default=9000)
    parser.add_argument("--bucket", default=BUCKET)
    args = parser.parse_args(argv)
    home = Path(args.prefect_home).resolve()
    if args.command == "up":
        exports = up(home, args.api_port, args.s3_port, args.bucket)
        url = exports["PREFECT_API_URL"].removesuffix("/api")
        env_sh = _state_dir(home) / "env.sh"
        print(f"Prefect UI {url}  |  work pool '{POOL}' + worker, '{GPU_TAG}' concurrency limit 1  |  "
              f"S3 {exports['EDITLENS_S3_ENDPOINT']} bucket '{args.bucket}'\n"
              f"logs and pids: {_state_dir(home)}   (stop everything: make down)\n"
              f"environment for prefect and `kedro run --env s3` (in {env_sh}):\n"
              + "".join(f"  export {k}={v}\n" for k, v in exports.items())
              + f"next:  source {env_sh}\n"
              "       .venv/bin/prefect --no-prompt deploy --all\n"
              "       .venv/bin/prefect deployment run editlens-generate/nightly --param env=tiny\n"
              "       .venv/bin/kedro run --env s3")
    elif args.command == "down":
        stopped = down(home)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        print(json.dumps(status(home), indent=2))


if __name__ == "__main__":
    main()
