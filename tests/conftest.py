"""Shared test set-up: offline switches, and a throwaway copy of the Kedro project."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Offline switches must be set before kedro / transformers / prefect are imported.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="editlens-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of pyproject.toml + conf/ in a temp folder (cwd set there), so a Kedro run writes
    its data/ there and never into the working tree. The code is imported from the repo."""
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    (tmp_path / "conf" / "local").mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "conf" / "base" / "credentials.yml", tmp_path / "conf" / "base" / "credentials.yml")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def zoo_run(tmp_path_factory):
    """One tiny baselines run over every detector registry entry (``tests/zoo_run.py``), shared
    by the zoo test and the baselines test so each entry is trained once per session."""
    from tests.zoo_run import run_zoo

    return run_zoo(tmp_path_factory.mktemp("zoo_run"))
