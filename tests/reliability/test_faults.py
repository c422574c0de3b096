"""Faults during real `kedro run`s (subprocesses on a throwaway copy of the project):

- the ingest stage SIGKILLed at a random point of its writes, then re-run: no duplicate, missing
  or half-written base image (local disk: temporary name + rename);
- the S3 endpoint (moto's server on loopback, behind a TCP hop that can take it down) goes away
  mid-run: the client retries with back-off, the run fails naming the endpoint, no partial
  object is left; when the endpoint is back, a re-run completes; and the secret key of the run
  appears in no log and no output.

(Prefect worker death and resumption of sharded flows are covered by the flow tests.)
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from flows import local_stack
from pipelines.datasets import decode_image

REPO_ROOT = Path(__file__).resolve().parents[2]
KEDRO = str(Path(sys.executable).parent / "kedro")
# 6 photos (tiny env: 5 names, the motorcycle is a stereo pair) x 8 crops = 48 base images
PARAMS = "ingest.crops_per_photo=8,ingest.image_size={size}"
N_IMAGES = 48
FAKE_SECRET = "fAkE-SeCrEt-0a9b8c7d6e5f4g3h2i1j-do-not-log"


PLAIN_LOGGING = """
version: 1
disable_existing_loggers: false
formatters: {plain: {format: "%(asctime)s %(levelname)s %(name)s: %(message)s"}}
handlers: {console: {class: logging.StreamHandler, formatter: plain, stream: "ext://sys.stdout"}}
loggers: {kedro: {level: INFO}, pipelines: {level: INFO}}
root: {level: WARNING, handlers: [console]}
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "MPLBACKEND": "Agg", "COLUMNS": "400",  # tracebacks: an endpoint URL stays on one line
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])})
    env.update(extra or {})
    return env


def _kedro(project: Path, env_name: str, size: int, env: dict[str, str], log_name: str) -> tuple[subprocess.Popen, Path]:
    """`kedro run --pipeline ingest` in ``project``; one plain log line per record, to project/logs/<log_name>
    (a file, not a pipe: nothing blocks while the test watches the run)."""
    logs = project / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "logging.yml").write_text(PLAIN_LOGGING)
    log = logs / log_name
    with open(log, "w") as out:
        process = subprocess.Popen(
            [KEDRO, "run", "--pipeline", "ingest", "--env", env_name, "--params", PARAMS.format(size=size)], cwd=project,
            env={**env, "KEDRO_LOGGING_CONFIG": str(logs / "logging.yml")}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return process, log


def _check_complete(manifest: pd.DataFrame, read_png) -> None:
    """Every manifest row has exactly one base image whose pixels hash to the manifest's sha256."""
    assert len(manifest) == N_IMAGES and manifest["base_id"].is_unique
    for row in manifest.itertuples(index=False):
        pixels = decode_image(read_png(row.base_id), "RGB", name=row.base_id)
        assert hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest() == row.sha256, row.base_id



def fault_rng(test: str) -> random.Random:
    """The kill points' random stream: seeded from EDITLENS_FAULT_SEED when set, else a fresh seed;
    the seed is printed (pytest shows it with a failure), so a failing kill point can be replayed."""
    seed = int(os.environ.get("EDITLENS_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{test}: fault seed {seed} (replay with EDITLENS_FAULT_SEED={seed})")
    return random.Random(seed)

@pytest.mark.slow
def test_ingest_killed_at_a_random_point_then_rerun_loses_nothing(project_copy: Path):
    images = project_copy / "data" / "02_intermediate" / "base_images"
    # A local image folder is written into a hidden staging folder beside it and swapped in when
    # every image is saved (pipelines.datasets.ParallelPartitionedDataset): kill inside that.
    staging_glob = ".tmp-base_images.*.part"

    def staged_pngs() -> list[Path]:
        return [p for folder in images.parent.glob(staging_glob) for p in folder.iterdir() if p.suffix == ".png"]

    kill_after = fault_rng("ingest kill").randint(1, N_IMAGES - 1)
    process, log = _kedro(project_copy, "tiny", 256, _env(), "killed.log")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if images.parent.exists() and len(staged_pngs()) >= kill_after:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, f"not killed mid-write (k={kill_after}):\n{log.read_text()[-3000:]}"
    staged = staged_pngs()
    leftovers = sorted(p.name for folder in images.parent.glob(staging_glob) for p in folder.iterdir()
                       if p.suffix != ".png")
    print(f"\n[faults] SIGKILL after {kill_after} of {N_IMAGES} images: {len(staged)} staged, "
          f"{len(leftovers)} temporary file(s) left: {leftovers}")
    assert kill_after <= len(staged) < N_IMAGES
    assert not images.exists()  # nothing of the killed save is visible under the real name
    assert all(name.startswith(".tmp-") and name.endswith(".part") for name in leftovers)
    for path in staged:  # even inside the staging folder, nothing half-written has a real name
        decode_image(path.read_bytes(), "RGB", name=str(path))
    for path in (project_copy / "data").rglob("*.parquet"):
        pd.read_parquet(path)  # tables too: absent or complete

    # the re-run: the same run, in this process (saves a second interpreter start)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny",
                             runtime_params={"ingest": {"crops_per_photo": 8, "image_size": 256}}) as session:
        session.run(pipeline_name="ingest")
    manifest = pd.read_parquet(project_copy / "data" / "02_intermediate" / "base_manifest.parquet")
    # exactly the manifest's images, and the killed run's staging folder is gone
    assert sorted(p.name for p in images.iterdir()) == sorted(f"{b}.png" for b in manifest["base_id"])
    assert not list(images.parent.glob(staging_glob))
    _check_complete(manifest, lambda base_id: (images / f"{base_id}.png").read_bytes())
    # the catalog's partitioned dataset lists exactly the manifest's images (no temporary file)
    with KedroSession.create(project_path=project_copy, env="tiny") as session:
        partitions = session.load_context().catalog.load("base_images")
    assert sorted(partitions) == sorted(manifest["base_id"])


_WRITER = """
import sys, numpy as np, pandas as pd
from pipelines.datasets import register_filesystems
register_filesystems()  # all-or-nothing local writes for every catalog dataset
from kedro_datasets.pandas import ParquetDataset
table = ParquetDataset(filepath=sys.argv[1])
rng = np.random.default_rng(0)
for version in range(1, 10_000):
    table.save(pd.DataFrame({"version": np.full(400_000, version), "noise": rng.random(400_000)}))
    print(version, flush=True)
"""


def test_a_table_killed_mid_save_keeps_its_previous_complete_version(tmp_path):
    """SIGKILL at random points while a catalog table (kedro-datasets parquet) is rewritten: the
    file on disk is always a complete earlier version, never a truncated one."""
    path = tmp_path / "05_model_input" / "splits.parquet"
    versions = []
    rng = fault_rng("table kill")
    for _ in range(3):
        process = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=_env(), stdout=subprocess.PIPE,
                                   text=True, start_new_session=True)
        for _ in range(rng.randint(1, 4)):  # let it finish 1..4 versions
            process.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.2))  # and kill it somewhere in the next save
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        table = pd.read_parquet(path)  # complete: reads, one version throughout, every row present
        assert len(table) == 400_000 and table["version"].nunique() == 1
        versions.append(int(table["version"].iloc[0]))
        leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
        assert all(n.startswith(".tmp-splits.parquet.") and n.endswith(".part") for n in leftovers), leftovers
    print(f"\n[faults] 3 SIGKILLs during table saves: the file held complete versions {versions}")


# ---- the S3 endpoint goes away mid-run


def _s3_conf(project: Path, name: str) -> None:
    """conf/<name>: the tiny sizes with every dataset in the bucket (conf/s3's credentials)."""
    env = project / "conf" / name
    shutil.copytree(project / "conf" / "tiny", env)
    shutil.copy(REPO_ROOT / "conf" / "s3" / "credentials.yml", env / "credentials.yml")
    tiny = yaml.safe_load((project / "conf" / "tiny" / "globals.yml").read_text()) or {}
    (env / "globals.yml").write_text(yaml.safe_dump({**tiny, "data_root": f"s3://{local_stack.BUCKET}/data"}))


@pytest.fixture(scope="module")
def s3_outage(tmp_path_factory, tcp_outage):
    """Runs the scenario once: ingest on S3 through the TCP hop, the hop taken down after a
    random number of base images, then up again and a re-run. Returns what the tests inspect."""
    import boto3

    work = tmp_path_factory.mktemp("s3-outage")
    project = work / "project"
    project.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    shutil.copy(REPO_ROOT / "conf" / "base" / "credentials.yml", project / "conf" / "base" / "credentials.yml")
    (project / "conf" / "local").mkdir(exist_ok=True)
    (project / "src").mkdir()
    _s3_conf(project, "rel_s3")
    service, direct = local_stack.start_s3(work / "stack", local_stack.base_env(work / "prefect"), local_stack.free_port())
    hop = tcp_outage(int(direct.rsplit(":", 1)[1]))
    s3 = boto3.client("s3", endpoint_url=direct, region_name="us-east-1", aws_access_key_id=local_stack.LOCAL_S3_KEY,
                      aws_secret_access_key=local_stack.LOCAL_S3_SECRET)
    prefix = "data/02_intermediate/base_images/"

    def keys(under: str = "data/") -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=local_stack.BUCKET, Prefix=under)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    env = _env({**local_stack.s3_env(hop.endpoint), "AWS_SECRET_ACCESS_KEY": FAKE_SECRET})
    result: dict = {"endpoint": hop.endpoint, "keys": keys, "s3": s3, "prefix": prefix, "project": project}
    started: list[subprocess.Popen] = []
    try:
        down_after = fault_rng("s3 outage").randint(1, N_IMAGES - 1)
        process, log = _kedro(project, "rel_s3", 256, env, "outage.log")
        started.append(process)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if len(keys(prefix)) >= down_after:
                hop.down()
                result["down_at"] = time.monotonic()
                break
            time.sleep(0.01)
        process.wait(timeout=400)
        result["failed_output"] = log.read_text()
        result["failed_rc"] = process.returncode
        result["failed_at"] = time.monotonic()
        result["attempts"] = list(hop.refused_at)
        result["down_after"] = down_after
        result["keys_after_failure"] = keys()
        result["objects_after_failure"] = {k: s3.get_object(Bucket=local_stack.BUCKET, Key=k)["Body"].read()
                                           for k in result["keys_after_failure"]}
        hop.up()
        rerun, log = _kedro(project, "rel_s3", 256, env, "rerun.log")
        started.append(rerun)
        rerun.wait(timeout=400)
        result["rerun_output"] = log.read_text()
        result["rerun_rc"] = rerun.returncode
        result["objects_after_rerun"] = {k: s3.get_object(Bucket=local_stack.BUCKET, Key=k)["Body"].read() for k in keys()}
        yield result
    finally:
        for child in started:  # a run that hung must not outlive the test
            if child.poll() is None:
                local_stack.stop_process_tree(child.pid)
        hop.close()
        local_stack.stop_process_tree(service.process.pid)


@pytest.mark.slow
def test_s3_endpoint_down_mid_run_retries_then_fails_naming_it_and_a_rerun_completes(s3_outage):
    out = s3_outage
    assert "down_at" in out, f"the run ended before the outage:\n{out['failed_output'][-3000:]}"
    assert out["failed_rc"] != 0
    named = [line.strip() for line in out["failed_output"].splitlines() if out["endpoint"] in line]
    assert named, out["failed_output"][-3000:]  # the failure names the endpoint
    errors = [line.strip() for line in out["failed_output"].splitlines() if "Error" in line]
    print(f"\n[faults] failure naming the endpoint: {named[-1][:300]}\n[faults] last error line: {errors[-1][:300]}")
    attempts = out["attempts"]
    gaps = np.diff(attempts)
    print(f"\n[faults] endpoint down after {out['down_after']} of {N_IMAGES} images; {len(attempts)} connection "
          f"attempts during the outage, gaps {np.round(gaps, 2).tolist()} s; failed "
          f"{out['failed_at'] - out['down_at']:.1f} s after the outage")
    assert len(attempts) >= 3  # retried
    assert gaps.max() > 2 * max(gaps.min(), 0.01)  # with growing delays (back-off), not in a tight loop
    # nothing partial: every object that exists is complete
    images = {k: v for k, v in out["objects_after_failure"].items() if k.startswith(out["prefix"])}
    assert out["down_after"] <= len(images) < N_IMAGES
    for key, payload in images.items():
        decode_image(payload, "RGB", name=key)
    for key, payload in out["objects_after_failure"].items():
        if key.endswith(".parquet"):
            assert payload[:4] == b"PAR1" and payload[-4:] == b"PAR1", key
    # the endpoint is back: a re-run completes
    assert out["rerun_rc"] == 0, out["rerun_output"][-3000:]
    objects = out["objects_after_rerun"]
    import io

    manifest = pd.read_parquet(io.BytesIO(objects["data/02_intermediate/base_manifest.parquet"]))
    stored = sorted(k[len(out["prefix"]):-len(".png")] for k in objects if k.startswith(out["prefix"]))
    assert stored == sorted(manifest["base_id"])
    _check_complete(manifest, lambda base_id: objects[f"{out['prefix']}{base_id}.png"])


@pytest.mark.slow
def test_the_secret_key_is_in_no_log_and_no_output(s3_outage):
    """The runs above used FAKE_SECRET as AWS_SECRET_ACCESS_KEY (conf/s3/credentials.yml reads it)."""
    assert s3_outage["rerun_rc"] == 0
    secret = FAKE_SECRET.encode()
    for name in ("failed_output", "rerun_output"):
        assert FAKE_SECRET not in s3_outage[name], name
    for key, payload in {**s3_outage["objects_after_failure"], **s3_outage["objects_after_rerun"]}.items():
        assert secret not in payload, key
    written = [p for p in s3_outage["project"].rglob("*") if p.is_file()]
    assert written  # the session store / project files
    for path in written:
        assert secret not in path.read_bytes(), path
