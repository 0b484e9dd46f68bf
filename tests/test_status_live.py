"""`annotator status` reads a run while it is going (another process), from the stage indexes alone."""

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
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", str(clips["a"]), "--input",
            str(clips["b"]), "--output", str(run_dir), "--executor", "local"]
    for setting in [*SMALL, "stages.track.batch_size=1"]:
        args += ["--set", setting]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (run_dir / "manifest.json").exists():
                text, rows = _status(run_dir)
                if rows.get("ingest", (0, 0))[0] == 2 and rows.get("assemble", (0, 0))[0] == 0 and proc.poll() is None:
                    partial = (text, rows)
                    break
            time.sleep(0.3)
    finally:
        proc.wait(timeout=300)
    assert partial is not None, "never saw the run half way"
    text, rows = partial
    assert "running or interrupted" in text and "0/2 videos finished" in text
    assert list(rows) == ["ingest", "caption", "phrases", "detect", "track", "link", "filter", "review_gate",
                          "assemble"]
    text, rows = _status(run_dir)
    assert proc.returncode == 0 and "finished" in text and "2/2 videos finished" in text
    assert all(done == 2 and errors == 0 for done, errors in rows.values())
