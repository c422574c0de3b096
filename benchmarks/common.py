"""Helpers shared by the benchmarks: a throwaway Kedro project, timers, child-process memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
ENV = {
    "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false", "MPLBACKEND": "Agg",
}
for _key, _value in ENV.items():
    os.environ.setdefault(_key, _value)


@contextlib.contextmanager
def project_copy(prefix: str = "editlens-bench-") -> Iterator[Path]:
    """A copy of pyproject.toml + conf/ in a temporary folder, made the working directory, so a
    Kedro run writes its data/ there (the code is imported from this checkout)."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
        shutil.copy(REPO / "conf" / "base" / "credentials.yml", root / "conf" / "base" / "credentials.yml")
        (root / "conf" / "local").mkdir(exist_ok=True)
        (root / "src").mkdir()
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(old)


def kedro_session(root: Path, env: str | None = None, params: dict[str, Any] | None = None):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(root)
    return KedroSession.create(project_path=root, env=env, runtime_params=params or None)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def child_env() -> dict[str, str]:
    return {**os.environ, **ENV, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}


_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:])\n"
    "print('@@PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)\n"
)


def peak_rss_of(command: list[str], cwd: Path, timeout: float = 600) -> tuple[float, float, str]:
    """Run ``command`` in a child process; returns (wall s, peak resident memory in MiB of the
    largest process it ran, output tail). A fresh wrapper process reads RUSAGE_CHILDREN, so the
    number belongs to this command alone."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    text = done.stdout + done.stderr
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("@@PEAK")]
    if not line or line[-1].split()[2] != "0":
        raise RuntimeError(f"{' '.join(command)} failed:\n{text[-3000:]}")
    return wall, int(line[-1].split()[1]) / 1024, text[-2000:]


def python() -> str:
    return sys.executable
