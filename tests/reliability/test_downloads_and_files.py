"""Security and file hygiene (issue 20): the ``urls`` source fetches only http(s) from public hosts
(loopback and private networks only when ``allow_private`` says so), every download has a total
deadline, written files get the mode a plain write gives, kedro never edits tracked files for its
telemetry, and metrics refuse bad values when they are added."""

from __future__ import annotations

import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from models.metrics import DetectionMetrics
from pipelines.ingest.nodes import ingest_base_images
from pipelines.ingest.sources import download

REPO = Path(__file__).resolve().parents[2]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 48, 3), 120, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Server:
    """127.0.0.1: /photo.png, /slow.png (one byte a second), /redirect (to ``redirect_to``)."""

    def __init__(self, redirect_to: str = ""):
        payload = _png()
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(handler):
                self.requests += 1
                if handler.path == "/redirect":
                    handler.send_response(302)
                    handler.send_header("Location", redirect_to)
                    handler.end_headers()
                    return
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                if handler.path == "/slow.png":
                    try:
                        for byte in payload:
                            handler.wfile.write(bytes([byte]))
                            handler.wfile.flush()
                            time.sleep(1.0)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                handler.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------- 11: URL schemes
def test_only_http_urls_of_public_hosts_are_fetched(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png())
    with _Server() as server:
        refused = {
            f"file://{secret}": "URL scheme 'file' is not allowed",
            "ftp://127.0.0.1/x.png": "URL scheme 'ftp' is not allowed",
            f"{server.url}/photo.png": "private or loopback address (127.0.0.1)",
            "http://[::1]:9/x.png": "private or loopback address (::1)",
            "http://169.254.169.254/latest/meta-data": "private or loopback address (169.254.169.254)",
            "http://10.1.2.3/x.png": "private or loopback address (10.1.2.3)",
        }
        for url, words in refused.items():
            result = download(url, retries=0, timeout_s=2)
            assert result.payload is None and words in result.reason and result.reason.startswith("refused:"), url
        assert server.requests == 0  # nothing was even asked of the loopback server
        assert download(f"{server.url}/photo.png", retries=0, timeout_s=2, allow_private=True).payload == _png()


def test_a_redirect_to_a_private_host_or_a_file_is_refused():
    import urllib.request

    from pipelines.ingest.sources import _CheckedRedirects, _Refused

    with _Server() as target, _Server(redirect_to="file:///etc/passwd") as to_file:
        with _Server(redirect_to=f"{target.url}/photo.png") as to_loopback:
            result = download(f"{to_file.url}/redirect", retries=0, timeout_s=2, allow_private=True)
            assert result.payload is None and "file:///etc/passwd" in result.reason and "not allowed" in result.reason
            assert download(f"{to_loopback.url}/redirect", retries=0, timeout_s=2, allow_private=True).payload == _png()
    # Every hop is checked as the first one is: a public page cannot bounce the client to loopback.
    request = urllib.request.Request("https://example.org/photo.png")
    with pytest.raises(_Refused, match=r"private or loopback address \(127\.0\.0\.1\)"):
        _CheckedRedirects(allow_private=False).redirect_request(request, None, 302, "Found", {},
                                                                "http://127.0.0.1:8080/admin")


def test_the_urls_source_refuses_file_urls_and_keeps_going(tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    with _Server() as server:
        pd.DataFrame({"url": [f"file://{secret}", f"{server.url}/photo.png"]}).to_parquet(tmp_path / "urls.parquet")
        params = {"source": "urls", "image_size": 32, "crops_per_photo": 1,
                  "urls": {"table": str(tmp_path / "urls.parquet"), "retries": 0, "timeout_s": 2, "allow_private": True}}
        images, manifest, _, issues = ingest_base_images(params)
    assert len(images) == 1 and list(issues["item"]) == [f"file://{secret}"]
    assert issues["reason"].iloc[0] == "refused: URL scheme 'file' is not allowed (only http and https)"


# ------------------------------------------------------------------------------ 12: total deadline
def test_a_slow_server_cannot_hold_a_download_past_its_deadline():
    with _Server() as server:
        started = time.monotonic()
        result = download(f"{server.url}/slow.png", retries=2, backoff_s=0.1, timeout_s=2, deadline_s=3,
                          allow_private=True)
        seconds = time.monotonic() - started
    assert result.payload is None and "3 s deadline" in result.reason
    assert seconds < 3 + 2 + 1, seconds  # the deadline, at most one read timeout, and slack


# ------------------------------------------------------------------------------------- 13: modes
def test_written_files_get_the_mode_a_plain_write_gives(tmp_path):
    from kedro_datasets.pandas import ParquetDataset

    from pipelines.datasets import PNGDataset, SafetensorsCheckpointDataset, write_bytes_atomically
    from pipelines.datasets import _filesystem

    previous = os.umask(0o022)
    os.umask(previous)
    expected = 0o666 & ~previous
    PNGDataset(filepath=str(tmp_path / "a.png")).save(np.zeros((8, 8, 3), np.uint8))
    ParquetDataset(filepath=str(tmp_path / "t.parquet")).save(pd.DataFrame({"x": [1]}))
    import torch

    SafetensorsCheckpointDataset(filepath=str(tmp_path / "c.safetensors")).save(
        {"state": {"w": torch.zeros(2)}, "config": {}})
    fs, protocol, path = _filesystem(str(tmp_path / "raw.bin"), None, None)
    write_bytes_atomically(fs, protocol, path, b"x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert (plain.stat().st_mode & 0o777) == expected
    for name in ("a.png", "t.parquet", "c.safetensors", "raw.bin"):
        assert ((tmp_path / name).stat().st_mode & 0o777) == expected, (name, oct((tmp_path / name).stat().st_mode))


# -------------------------------------------------------------------------------- 14: telemetry
@pytest.mark.slow
def test_kedro_started_without_the_makefile_environment_modifies_no_tracked_file(tmp_path):
    """`.venv/bin/kedro` as a user would start it (no KEDRO_DISABLE_TELEMETRY / DO_NOT_TRACK): the
    project's `.telemetry` (consent: false) keeps kedro-telemetry from writing a project_id into
    pyproject.toml and from sending anything."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    shutil.copy(REPO / "conf" / "base" / "credentials.yml", project / "conf" / "base" / "credentials.yml")
    (project / "src").mkdir()
    before = (project / "pyproject.toml").read_bytes()
    env = {k: v for k, v in os.environ.items() if k not in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    kedro = Path(sys.executable).parent / "kedro"
    result = subprocess.run([str(kedro), "registry", "list"], cwd=project, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ingest" in result.stdout
    assert (project / "pyproject.toml").read_bytes() == before
    assert "project_id" not in (project / "pyproject.toml").read_text()


# ------------------------------------------------------------------------------ 18: metric inputs
@pytest.mark.parametrize("scores, fake, words", [
    ([0.2, float("nan")], [0, 1], "image 'b': image score nan is not a finite number"),
    ([0.2, 0.9], [0, 3], "image 'b': is_fake must be 0 or 1, got 3"),
    ([0.2, 0.9], [0.5, 1], "image 'a': is_fake must be 0 or 1, got 0.5"),
    ([float("inf"), 0.9], [0, 1], "image 'a': image score inf is not a finite number"),
])
def test_detection_metrics_refuse_bad_values_on_update_naming_the_item(scores, fake, words):
    metrics = DetectionMetrics(["untouched", "edited"], pixel_level=False)
    metrics.update(np.array([0.1, 0.8]), np.array([0, 1]), item_ids=["x", "y"])
    with pytest.raises(ValueError) as error:
        metrics.update(np.array(scores), np.array(fake), item_ids=["a", "b"])
    assert str(error.value) == words
    summary = metrics.summary()  # the batch was refused whole; what came before still sums up
    assert summary["n_images"] == 2 and summary["image"]["roc_auc"] == 1.0


def test_detection_metrics_refuse_a_nan_pixel_probability():
    metrics = DetectionMetrics(["untouched", "edited"])
    target = np.zeros((2, 4, 4), np.int64)
    target[1, :2] = 1
    probability = np.zeros((2, 4, 4))
    probability[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"image 1 of the batch: edited_probability has values that are NaN"):
        metrics.update(np.array([0.1, 0.9]), np.array([0, 1]), target.copy(), target, edited_probability=probability)
    assert len(metrics) == 0
