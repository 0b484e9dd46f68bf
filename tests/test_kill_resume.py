"""SIGKILL a running `annotator run` at points spread across the stages, with the local executor and with Ray,
run it again: the same dataset as an uninterrupted run, no duplicate rows, and no finished (video, stage) pair
recomputed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import DEMO, SMALL, demo_pipeline, export_rows, gone_within, kill_then_resume

pytestmark = pytest.mark.slow
STAGES = ("ingest", "caption", "phrases", "detect", "track", "link", "filter", "review_gate", "assemble")
ONE_AT_A_TIME = [*(f"stages.{s}.batch_size=1" for s in STAGES), "executor.flush_rows=1"]  # every batch indexed


def _start(inputs: list[Path], run_dir: Path, executor: str = "local") -> subprocess.Popen:
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--output", str(run_dir), "--executor", executor]
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


@pytest.mark.parametrize(("executor", "stage"), [("local", "ingest"), ("local", "track"), ("ray", "caption")])
def test_killed_anywhere_resumes_to_the_same_dataset(executor: str, stage: str, clips: dict[str, Path],
                                                     reference: tuple, tmp_path: Path) -> None:
    """The whole process group dies (CLI, and on Ray its raylet and workers), as when a login session ends."""
    inputs = [clips["a"], clips["b"]]
    run_dir = tmp_path / "killed"
    kill_then_resume(lambda: _start(inputs, run_dir, executor), run_dir, stage, pairs=2 * len(STAGES))
    videos, objects, qa = _dataset(run_dir)
    assert (videos, objects, qa) == reference
    assert len({(o["video_id"], o["object_id"]) for o in objects}) == len(objects), "no duplicate rows"


def test_a_ray_cli_killed_alone_resumes_to_the_same_dataset_and_leaves_no_process(clips: dict[str, Path],
                                                                                  reference: tuple,
                                                                                  tmp_path: Path) -> None:
    """`kill -9 PID` of the CLI alone: its Ray processes are orphans that nothing of it can clean up. The next
    run of the same command removes them, keeps what finished and completes the same dataset."""
    inputs = [clips["a"], clips["b"]]
    run_dir = tmp_path / "killed"
    family: set[int] = set()

    def kill_cli_alone(proc: subprocess.Popen) -> None:
        family.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
        proc.kill()

    kill_then_resume(lambda: _start(inputs, run_dir, "ray"), run_dir, "track", pairs=2 * len(STAGES),
                     kill=kill_cli_alone)
    assert family, "the Ray run had started its processes"
    assert _dataset(run_dir) == reference
    alive = gone_within(family, 30)  # the re-run stops them as it starts; a signalled process may take a moment
    assert not alive, [psutil.Process(p).cmdline()[:3] for p in alive]
