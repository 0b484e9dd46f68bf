"""Ctrl-C (SIGINT) and SIGTERM: one line saying how to resume, exit status 130, no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from annotator.rundir import RunDir
from tests.helpers import DEMO, SMALL, gone_within

pytestmark = pytest.mark.slow


def demo_args(clips: dict[str, Path], run_dir: Path, executor: str) -> list[str]:
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", str(clips["a"]), "--input",
            str(clips["b"]), "--output", str(run_dir), "--executor", executor]
    for setting in [*SMALL, "stages.ingest.batch_size=1", "executor.flush_rows=1"]:
        args += ["--set", setting]
    return args


def started(proc: subprocess.Popen, run_dir: Path) -> set[int]:
    """Wait until ingest has indexed a video; the CLI's descendants seen meanwhile (the CLI still runs)."""
    family: set[int] = set()
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        if (run_dir / "manifest.json").exists() and RunDir(str(run_dir)).read_index("ingest").num_rows:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be stopped"
    return family | {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}


@pytest.mark.parametrize(("executor", "sig"), [("ray", signal.SIGINT), ("local", signal.SIGTERM)])
def test_interrupted_run_says_how_to_resume_and_leaves_no_process(clips: dict[str, Path], tiny_models,
                                                                  tmp_path: Path, executor: str, sig: int) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(demo_args(clips, run_dir, executor), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "COLUMNS": "200"})
    family = started(proc, run_dir)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)  # one Ctrl-C is enough, on Ray too
    assert proc.returncode == 130, out + err
    assert "interrupted: " in err and "videos finished; run the same command to resume" in err
    assert "Traceback" not in err and "core_worker" not in err, err
    alive = gone_within(family, 30)
    assert not alive, [psutil.Process(p).cmdline()[:3] for p in alive]
