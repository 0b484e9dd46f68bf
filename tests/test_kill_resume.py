"""SIGKILL a running `annotator run` at 5 points spread across the stages, run it again: the same dataset as an
uninterrupted run, no duplicate rows, and no finished (video, stage) pair recomputed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annotator.rundir import RunDir
from tests.helpers import DEMO, SMALL, computed, demo_pipeline, export_rows

pytestmark = pytest.mark.slow
ONE_AT_A_TIME = [f"stages.{s}.batch_size=1" for s in ("ingest", "caption", "phrases", "detect", "track", "link",
                                                        "filter", "assemble")]


def _start(inputs: list[Path], run_dir: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--output", str(run_dir), "--executor", "local"]
    for path in inputs:
        args += ["--input", str(path)]
    for setting in [*SMALL, *ONE_AT_A_TIME]:
        args += ["--set", setting]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _dataset(run_dir: Path) -> tuple[list, list, list]:
    return (export_rows(run_dir, "videos"), export_rows(run_dir, "objects"),
            [(r["video_id"], r["question"], r["answer"], r["object_ids"]) for r in export_rows(run_dir, "qa")])


@pytest.mark.parametrize("stage", ["ingest", "caption", "phrases", "detect", "track"])
def test_killed_anywhere_resumes_to_the_same_dataset(stage: str, clips: dict[str, Path], tiny_models,
                                                     tmp_path: Path) -> None:
    inputs = [clips["a"], clips["b"]]
    ref_dir = tmp_path / "reference"
    demo_pipeline(*ONE_AT_A_TIME).run(inputs, ref_dir, executor="local", show_progress=False)
    reference = _dataset(ref_dir)
    run_dir = tmp_path / "killed"
    proc = _start(inputs, run_dir)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "manifest.json").exists() and RunDir(str(run_dir)).read_index(stage).num_rows >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "finished before the kill"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = computed(run_dir)
    assert 0 < len(before) < 16
    again = _start(inputs, run_dir)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    after = computed(run_dir)
    assert {k: after[k] for k in before} == before, "no finished (video, stage) pair recomputed"
    assert len(after) == 16
    videos, objects, qa = _dataset(run_dir)
    assert (videos, objects, qa) == reference
    assert len({(o["video_id"], o["object_id"]) for o in objects}) == len(objects), "no duplicate rows"
