"""A run on the S3 test server, SIGKILLed again and again at random moments (seeded), then let finish: its dataset
equals an undisturbed run's, and each kill cost at most one unflushed buffer of work (flush size x workers),
counted from a tally the stages leave per video they processed, which no kill can take back."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from annotator import storage
from tests.conftest import BUCKET
from tests.fake_flow import TALLY_ENV, flow_specs
from tests.helpers import export_rows

pytestmark = pytest.mark.slow

VIDEOS = 24
FLUSH = 3  # rows a worker buffers before it writes them
WORKERS = 1  # the local executor: one process, one stage runner at work at a time
KILLS = 8


def _pipeline(path: Path) -> Path:
    stages = [{**spec, "batch_size": 1} for spec in flow_specs(frames=2)]
    stages[-1]["stage"] = "tally-link"
    for spec in stages:  # a little model time, so kills land inside stages, not only at start-up
        if spec["stage"] in ("fake-detect", "fake-track"):
            spec["params"]["cost_s"] = 0.15
    stages.append({"stage": "tally-assemble", "batch_size": 1, "params": {"questions": ["What happens?"]}})
    path.write_text(yaml.safe_dump({"name": "kill-loop", "executor": {"kind": "local", "flush_rows": FLUSH},
                                    "stages": stages}))
    return path


def _start(pipeline: Path, inputs: str, out: str, tally: Path, env: dict[str, str]) -> subprocess.Popen:
    code = ("import tests.fake_flow, sys; from annotator.cli import app; sys.argv = ['annotator', 'run', "
            "sys.argv[1], '--input', sys.argv[2], '--output', sys.argv[3]]; app()")
    return subprocess.Popen([sys.executable, "-c", code, str(pipeline), inputs, out], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, **env, TALLY_ENV: str(tally)})


def _calls(tally: Path) -> Counter[tuple[str, str]]:
    """(stage, video) -> how many times a call processed it."""
    return Counter((f.parent.name, f.name.split(".")[0]) for f in tally.glob("*/*"))


def _dataset(out: str) -> tuple[list, list]:
    qa = [(r["video_id"], r["question"], r["answer"], r["object_ids"]) for r in export_rows(out, "qa")]
    objects = [(r["video_id"], r["object_id"], r["phrase"], r["frame_indices"], r["mask_rles"])
               for r in export_rows(out, "objects")]
    return qa, objects


def test_killed_many_times_on_s3_finishes_the_same_dataset_losing_at_most_a_buffer_per_kill(
        s3: dict[str, str], clips: dict[str, Path], tmp_path: Path) -> None:
    inputs = f"s3://{BUCKET}/kill-loop"
    data = clips["a"].read_bytes()
    for i in range(VIDEOS):
        storage.write_bytes(f"{inputs}/v{i:02d}.mp4", data)
    pipeline = _pipeline(tmp_path / "kill-loop.yaml")

    calm_tally = tmp_path / "calm-tally"
    calm = _start(pipeline, inputs, f"s3://{BUCKET}/runs/kill-loop-calm", calm_tally, s3)
    output, _ = calm.communicate(timeout=600)
    assert calm.returncode == 0, output
    pairs = sum(_calls(calm_tally).values())
    assert pairs == VIDEOS * 7 and max(_calls(calm_tally).values()) == 1

    out, tally = f"s3://{BUCKET}/runs/kill-loop-killed", tmp_path / "tally"
    rng = random.Random(19)
    before: Counter[tuple[str, str]] = Counter()
    kills = 0
    for _ in range(KILLS):
        proc = _start(pipeline, inputs, out, tally, s3)
        started, deadline = sum(_calls(tally).values()), time.monotonic() + 120
        while proc.poll() is None and sum(_calls(tally).values()) == started:  # at work again
            assert time.monotonic() < deadline, "the run did no work for two minutes"
            time.sleep(0.05)
        moment = time.monotonic() + rng.uniform(0.0, 1.5)  # a random moment of its work
        while proc.poll() is None and time.monotonic() < moment:
            time.sleep(0.02)
        if proc.poll() is not None:  # finished before its moment came
            assert proc.returncode == 0, proc.stdout.read() if proc.stdout else ""
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        now = _calls(tally)
        redone = sum(max(0, n - 1) for n in now.values()) - sum(max(0, n - 1) for n in before.values())
        assert redone <= FLUSH * WORKERS, f"attempt {kills} redid {redone} (video, stage) pairs"
        before = now
    final = _start(pipeline, inputs, out, tally, s3)
    output, _ = final.communicate(timeout=600)
    assert final.returncode == 0, output
    calls = _calls(tally)
    redone = sum(n - 1 for n in calls.values())
    assert set(calls) == set(_calls(calm_tally)), "every (video, stage) pair was done"
    assert kills == KILLS, "every attempt but the last was killed at work"
    assert redone - sum(max(0, n - 1) for n in before.values()) <= FLUSH * WORKERS
    assert redone <= kills * FLUSH * WORKERS, f"{kills} kills redid {redone} pairs"
    assert _dataset(out) == _dataset(f"s3://{BUCKET}/runs/kill-loop-calm")
    assert len(_dataset(out)[0]) == VIDEOS
