"""Shared test helpers: the demo pipeline shrunk for short clips, and readers for a run's export."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from click.testing import Result
from typer.testing import CliRunner

from annotator import paths
from annotator.config import load_config
from annotator.pipeline import Pipeline
from annotator.rundir import RunDir

DEMO = paths.PIPELINES_DIR / "demo.yaml"
SMALL = ["stages.ingest.params.target_fps=8", "stages.ingest.params.max_frames=6"]


def run_source(pipeline: str, out: Path, annotations: Path | str, frames_root: Path | str, *args: str,
               tagger: Callable[[dict], str] | None = None) -> tuple[Result, list[dict[str, Any]]]:
    """`annotator run` of a bundled source pipeline on an annotation file and its frames (extra CLI `args`), the
    tag stage asking a fake server that answers with `tagger`: the CLI's result and the requests it received."""
    from annotator.cli import app
    from annotator.testing.fake_server import FakeServer

    argv = ["run", str(paths.PIPELINES_DIR / pipeline), "-o", str(out),
            "--set", f"stages.source.params.annotations={annotations}",
            "--set", f"stages.source.params.frames_root={frames_root}", *args]
    if tagger is None:
        return CliRunner().invoke(app, argv, terminal_width=300), []
    with FakeServer(reply=tagger) as server:
        result = CliRunner().invoke(app, [*argv, "--set", f"stages.tag.params.endpoint={server.url}"],
                                    terminal_width=300)
        return result, server.requests


def endpoint_sets(pipeline: Path, url: str) -> list[str]:
    """`--set` arguments pointing every served stage of `pipeline` at `url` (a fake server)."""
    from annotator.config import build_stages

    built = build_stages(load_config(pipeline), str(pipeline))
    return [arg for b in built if b.stage.served() for arg in ("--set", f"stages.{b.name}.params.endpoint={url}")]


def demo_pipeline(*overrides: str) -> Pipeline:
    return Pipeline(load_config(DEMO, [*SMALL, *overrides]), str(DEMO))


def export_rows(run_dir: Path | str, table: str) -> list[dict]:
    """A table of the run's export, from the parts its workers wrote (current videos only)."""
    rows = RunDir(str(run_dir)).read_export(table).to_pylist()
    return sorted(rows, key=lambda r: (r["video_id"], r.get("object_id") or r.get("qa_id") or ""))


def computed(run_dir: Path | str) -> dict[tuple[str, str], tuple[str, float]]:
    """(stage, video_id) -> (shard, finished time) of every stage result the run directory's indexes hold:
    a pair recomputed by a later run shows up with a new shard and time."""
    run = RunDir(str(run_dir))
    out = {}
    for row in run.read_manifest()["stages"]:
        for r in run.read_index(row["stage"]).sort_by("finished").to_pylist():
            if r["status"] == "ok":
                out.setdefault((r["stage"], r["video_id"]), []).append((r["shard"], r["finished"]))
    return {k: v[-1] for k, v in out.items()}


Computed = dict[tuple[str, str], tuple[str, float]]


def kill_then_resume(start: Callable[[], subprocess.Popen], run_dir: Path | str, stage: str, pairs: int,
                     kill: Callable[[subprocess.Popen], None] | None = None) -> Computed:
    """Start a run, SIGKILL it once `stage` has indexed a video (by default its whole process group; `kill` may
    do it otherwise), start it again: the re-run must finish, keep every (video, stage) result from before the
    kill, and end with `pairs` of them."""
    proc = start()
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if RunDir(str(run_dir)).read_index(stage).num_rows >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stdout.read() if proc.stdout else ''}"
    if kill is None:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        kill(proc)
    proc.wait()
    before = computed(run_dir)
    assert 0 < len(before) < pairs, f"killed mid-run: {len(before)} of {pairs} (video, stage) pairs done"
    again = start()
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    after = computed(run_dir)
    assert {k: after[k] for k in before} == before, "no finished (video, stage) pair recomputed"
    assert len(after) == pairs
    return after


def still_alive(family: set[int]) -> list[int]:
    alive = []
    for pid in family:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def gone_within(family: set[int], seconds: float) -> list[int]:
    """Wait (up to `seconds`) for every process of `family` to exit; the ones still alive then."""
    deadline = time.monotonic() + seconds
    while (alive := still_alive(family)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def current_export(run: RunDir, table: str, key: tuple[str, ...]) -> list[tuple]:
    """The table's rows of each video's current part (a recomputed video's earlier part does not count), sorted:
    two runs made the same dataset when these are equal."""
    import json

    import pyarrow.compute as pc

    newest = run.newest_rows("assemble")  # runs of the executor alone have no manifest: every final row counts
    finished = newest.filter(pc.equal(newest["status"], "ok"))
    data = run.read_export(table, list(key), finished).to_pylist()
    return sorted(tuple(json.dumps(r[k]) for k in key) for r in data)
