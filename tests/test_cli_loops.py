"""The commands scripts and dashboards poll, run again and again as separate processes: `status`, `export` and
`report` exit 0 every time, on a finished run and on one that is running meanwhile. A command that aborts at exit
(a native thread left running when the interpreter goes) fails some of the tries, never all: hence 50 each."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from annotator.rundir import RunDir
from tests.fake_flow import flow_specs

pytestmark = pytest.mark.slow

TRIES = 50
CLI = ("import tests.fake_flow, sys; from annotator.cli import main; sys.argv = ['annotator', *sys.argv[1:]]; main()")


def _pipeline(path: Path, cost_s: float) -> Path:
    stages = flow_specs(frames=2)
    for spec in stages:
        if spec["stage"] in ("fake-detect", "fake-track"):
            spec["params"]["cost_s"] = cost_s
    stages.append({"stage": "assemble", "params": {"questions": ["What happens?"]}})
    path.write_text(yaml.safe_dump({"name": "loops", "executor": {"kind": "local", "flush_rows": 2},
                                    "stages": stages}))
    return path


def _cli(*args: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


def _loop(run_dir: Path, tmp_path: Path) -> list[str]:
    """Each command TRIES times, two at a time; the failures, with their exit status and the end of their output."""
    commands = [("status", str(run_dir))] * TRIES + [
        ("export", str(run_dir), "--format", "parquet", "--out", str(tmp_path / f"export-{i}")) for i in range(TRIES)
    ] + [("report", str(run_dir), "--out", str(tmp_path / f"report-{i}.html")) for i in range(TRIES)]

    def one(args: tuple[str, ...]) -> str | None:
        proc = _cli(*args)
        output, _ = proc.communicate(timeout=300)
        return None if proc.returncode == 0 else f"{args[0]} exited {proc.returncode}: {output[-400:]}"

    with ThreadPoolExecutor(2) as pool:
        return [failure for failure in pool.map(one, commands) if failure]


@pytest.fixture
def videos(clips: dict[str, Path], tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(12):
        shutil.copy(clips["a"], folder / f"v{i:02d}.mp4")
    return folder


def test_status_export_and_report_exit_0_fifty_times_on_a_finished_run(videos: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = _cli("run", str(_pipeline(tmp_path / "p.yaml", 0.0)), "--input", str(videos), "--output", str(run_dir))
    output, _ = done.communicate(timeout=300)
    assert done.returncode == 0, output
    assert _loop(run_dir, tmp_path) == []
    assert RunDir(str(run_dir)).read_manifest()["counts"]["completed"] == 12


def test_status_export_and_report_exit_0_fifty_times_on_a_running_run(videos: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    running = _cli("run", str(_pipeline(tmp_path / "p.yaml", 60.0)), "--input", str(videos), "--output",
                   str(run_dir), start_new_session=True)  # 60 s a keyframe: it outlasts the loop
    try:
        deadline = time.monotonic() + 120
        while not RunDir(str(run_dir)).read_index("fake-phrases").num_rows:  # part way: detect is slow
            assert running.poll() is None and time.monotonic() < deadline, running.stdout.read()
            time.sleep(0.2)
        assert _loop(run_dir, tmp_path) == []
        assert running.poll() is None, "the loop ran against a running run"
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
