"""A finished run whose items all wait for review, and a real review server process over it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from tests.fake_flow import flow_specs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pending_run(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five items from the fake flow, every one pending review."""
    root = tmp_path_factory.mktemp("pending")
    (root / "in").mkdir()
    for name in ("v1", "v2", "v3", "v4", "v5"):
        shutil.copy(clips["a"], root / "in" / f"{name}.mp4")
    config = PipelineConfig.model_validate({"name": "review", "stages": [
        *flow_specs(frames=3), {"stage": "review_gate", "params": {"policy": "all"}}, {"stage": "assemble"}]})
    summary = Pipeline(config).run([root / "in"], root / "run", executor="local", show_progress=False)
    assert summary.pending == 5
    return root / "run"


CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium, for Playwright (which then downloads no browser of its own)."""
    if not Path(CHROMIUM).exists():
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True)
    return CHROMIUM


Serve = Callable[..., tuple[subprocess.Popen, str]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start `annotator review RUN` as its own process; returns (process, base URL) once it answers."""
    started: list[subprocess.Popen] = []

    def start(run_dir: Path, *extra: str, host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "annotator.cli", "review", str(run_dir), "--host", host,
                                 "--port", str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "COLUMNS": "300"})
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(url + "/api/health", timeout=1)
                return proc, url
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        raise TimeoutError("the review server did not start")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
