"""Lineage in kedro-viz: `kedro viz build` (what `make viz` runs) on a copy of the project, checked
against the registered pipelines, then the built page opened in headless Chromium over loopback.

Chromium is Debian's `chromium` package; when it is missing the test asks `make viz-browser` to
install it once and skips, saying why, if that fails. Set EDITLENS_VIZ_SCREENSHOT (as
`make viz-check` does) to keep a copy of the screenshot, e.g. under data/08_reporting/.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
KEDRO = Path(sys.executable).parent / "kedro"
CHROMIUM = "/usr/bin/chromium"
SHOWN = "generate"  # the pipeline the browser is asked to draw (?pid=)


def _is_param(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


@pytest.fixture(scope="module")
def viz_build(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("viz-project")
    shutil.copy(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    (project / "conf" / "local").mkdir(exist_ok=True)
    (project / "src").mkdir()
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
    done = subprocess.run([str(KEDRO), "viz", "build"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return project / "build"


@pytest.fixture(scope="module")
def registered():
    from pipelines.pipeline_registry import register_pipelines

    return register_pipelines()


def _nodes_by_type(payload: dict) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    for node in payload["nodes"]:
        by_type.setdefault(node["type"], []).append(node)
    return by_type


def test_every_registered_pipeline_and_its_datasets_are_in_the_build(viz_build, registered):
    main = json.loads((viz_build / "api" / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(registered)
    assert main["selected_pipeline"] == "__default__"
    for name, pipeline in registered.items():
        path = viz_build / "api" / "pipelines" / name
        assert path.is_file(), f"kedro viz build wrote no {path}"
        by_type = _nodes_by_type(json.loads(path.read_text()))
        tasks = {n["full_name"] for n in by_type.get("task", [])}
        datasets = {n["name"] for n in by_type.get("data", [])}
        params = {n["name"] for n in by_type.get("parameters", [])}
        assert tasks == {n.name for n in pipeline.nodes}, name
        assert datasets == {d for d in pipeline.datasets() if not _is_param(d)}, name
        assert params and params <= {d for d in pipeline.datasets() if _is_param(d)}, name
        assert len(json.loads(path.read_text())["edges"]) >= len(tasks), name


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        done = subprocess.run(["make", "-s", "viz-browser"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=900)
        if not Path(CHROMIUM).exists():
            pytest.skip(f"{CHROMIUM} is absent and `make viz-browser` could not install Debian's chromium "
                        f"(exit {done.returncode}): {(done.stdout + done.stderr)[-400:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(viz_build):
    """The static site on 127.0.0.1 (its JavaScript fetches api/*: file:// would not do)."""
    handler = functools.partial(_QuietHandler, directory=str(viz_build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium, headless and offline: every host but loopback resolves to nothing (the page
    links Google Fonts), JavaScript gets 15 s of virtual time to fetch and lay out the graph."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               "--window-size=1600,1000", "--virtual-time-budget=15000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def test_the_built_page_renders_the_pipeline_graph_in_headless_chromium(viz_build, served, registered, tmp_path):
    chromium = _chromium()
    url = f"{served}?pid={SHOWN}"
    dom = _headless(chromium, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    import re

    drawn = {kind: set(re.findall(rf'class="pipeline-node pipeline-node--{kind}"[^>]*data-node-fullname="([^"]+)"',
                                   dom.stdout))
             for kind in ("task", "data")}
    pipeline = registered[SHOWN]
    assert drawn["task"] == {n.name for n in pipeline.nodes}, "the graph's task nodes"
    assert drawn["data"] == {d for d in pipeline.datasets() if not _is_param(d)}, "the graph's dataset nodes"
    assert dom.stdout.count('class="pipeline-edge') >= len(drawn["task"]), "edges of the graph"

    shot = tmp_path / "kedro_viz.png"
    done = _headless(chromium, tmp_path / "profile", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1000, 1600)
    assert pixels.std() > 10, "the screenshot is blank"
    target = os.environ.get("EDITLENS_VIZ_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)
