"""SIGKILL a running `annotator run` at 5 points spread across the stages, run it again: the same dataset as an
uninterrupted run, no duplicate rows, and no finished (video, stage) pair recomputed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DEMO, SMALL, demo_pipeline, export_rows, kill_then_resume

pytestmark = pytest.mark.slow
STAGES = ("ingest", "caption", "phrases", "detect", "track", "link", "filter", "review_gate", "assemble")
ONE_AT_A_TIME = [f"stages.{s}.batch_size=1" for s in STAGES]


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


@pytest.fixture(scope="module")
def reference(clips: dict[str, Path], tiny_models, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The dataset of an undisturbed run (built once for every kill point)."""
    ref_dir = tmp_path_factory.mktemp("reference")
    demo_pipeline(*ONE_AT_A_TIME).run([clips["a"], clips["b"]], ref_dir, executor="local", show_progress=False)
    return _dataset(ref_dir)


@pytest.mark.parametrize("stage", ["ingest", "caption", "phrases", "detect", "track"])
def test_killed_anywhere_resumes_to_the_same_dataset(stage: str, clips: dict[str, Path], reference: tuple,
                                                     tmp_path: Path) -> None:
    inputs = [clips["a"], clips["b"]]
    run_dir = tmp_path / "killed"
    kill_then_resume(lambda: _start(inputs, run_dir), run_dir, stage, pairs=2 * len(STAGES))
    videos, objects, qa = _dataset(run_dir)
    assert (videos, objects, qa) == reference
    assert len({(o["video_id"], o["object_id"]) for o in objects}) == len(objects), "no duplicate rows"
