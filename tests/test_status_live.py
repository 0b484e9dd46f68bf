"""`annotator status` reads a run while it is going (another process), from the stage indexes alone. The run is
held at a known point, not caught in passing: its served captioner's answers wait until the test releases them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DEMO, SMALL

pytestmark = pytest.mark.slow


def _status(run_dir: Path) -> tuple[str, dict[str, tuple[int, int]]]:
    out = subprocess.run([sys.executable, "-m", "annotator.cli", "status", str(run_dir)], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    rows = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^\s*(\w+)\s+(\d+)\s+(\d+)\s+\d+", out.stdout, re.M)}
    return out.stdout, rows


def test_status_of_a_running_run_shows_partial_counts(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    from annotator.testing.fake_server import FakeServer, Fault

    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", str(clips["a"]), "--input",
            str(clips["b"]), "--output", str(run_dir), "--executor", "local"]
    with FakeServer([Fault("hold"), Fault("hold")], content="a rabbit near a tree and a flower") as server:
        served = ["stages.caption.params.backend=openai", f"stages.caption.params.endpoint={server.url}",
                  "stages.caption.params.model=served-vlm"]
        for setting in [*SMALL, "stages.track.batch_size=1", *served]:
            args += ["--set", setting]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 300
            while not server.requests:  # the captioner asked, and waits: the run stands still here
                assert proc.poll() is None, f"the run ended before it asked the captioner: {proc.communicate()[0]}"
                assert time.monotonic() < deadline, "the captioner was never asked within 300 s"
                time.sleep(0.1)
            text, rows = _status(run_dir)
            server.release()
            output, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, output
    assert "running or interrupted" in text and "0/2 videos finished" in text, text
    assert list(rows) == ["ingest", "caption", "phrases", "detect", "track", "link", "filter", "review_gate",
                          "assemble"]
    assert rows["ingest"] == (2, 0) and all(rows[s] == (0, 0) for s in list(rows)[1:]), rows
    text, rows = _status(run_dir)
    assert "finished" in text and "2/2 videos finished" in text
    assert all(done == 2 and errors == 0 for done, errors in rows.values())
