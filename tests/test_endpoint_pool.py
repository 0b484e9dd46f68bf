"""Served stages with several replicas, and the preflight that checks them before any video starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from annotator import paths
from annotator.cli import app
from annotator.config import PipelineConfig
from annotator.models.endpoints import Endpoints
from annotator.pipeline import Pipeline
from annotator.testing.fake_server import FakeServer
from tests.helpers import endpoint_sets, export_rows

RAW = paths.PIPELINES_DIR / "raw_videos.yaml"
REFUSED = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_requests_go_to_the_least_busy_healthy_replica_and_a_failing_one_sits_out_its_cooldown() -> None:
    clock = Clock()
    pool = Endpoints(["http://a/v1", "http://b/v1/"], bench_after=3, cooldown_s=30.0, clock=clock)
    assert pool.pick() == "http://a/v1"  # equals: the first listed
    pool.start("http://a/v1")
    assert pool.pick() == "http://b/v1" and pool.pick(avoid="http://b/v1") == "http://a/v1"
    pool.finish("http://a/v1", fault=False)
    for _ in range(2):
        pool.start("http://a/v1")
        assert not pool.finish("http://a/v1", fault=True)
    pool.start("http://a/v1")
    assert pool.finish("http://a/v1", fault=True), "the third fault in a row benches it"
    assert pool.healthy() == ["http://b/v1"] and pool.pick() == "http://b/v1"
    clock.now = 29.0
    assert pool.pick(avoid="http://b/v1") == "http://b/v1", "benched: not even a retry goes there"
    clock.now = 30.0
    assert pool.healthy() == ["http://a/v1", "http://b/v1"] and pool.pick() == "http://a/v1"
    pool.start("http://a/v1")
    assert pool.finish("http://a/v1", fault=True), "its probe failed: benched again at once"
    pool.start("http://b/v1")
    pool.finish("http://b/v1", fault=True)
    pool.start("http://b/v1")
    pool.finish("http://b/v1", fault=False)  # a success clears b's count
    assert pool.healthy() == ["http://b/v1"]


def _pipeline(endpoints: list[str]) -> Pipeline:
    return Pipeline(PipelineConfig.model_validate({"name": "replicas", "stages": [
        {"stage": "ingest", "params": {"target_fps": 4, "max_frames": 3}},
        {"stage": "caption", "params": {"backend": "openai", "endpoint": endpoints, "model": "served-vlm",
                                        "num_frames": 2, "max_concurrency": 2, "max_retries": 3,
                                        "backoff_s": 0.01}},
        {"stage": "phrases"},
    ]}))


def test_a_replica_that_dies_mid_run_costs_nothing_and_the_manifest_shows_requests_moving(
        clips: dict[str, Path], tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):
        shutil.copy(clips["a"], videos / f"v{i}.mp4")
    caption = "a rabbit near a tree"
    # `a` answers its first two requests, then resets every connection and stops listening
    with (FakeServer(content=caption, latency_s=0.2, down_after=2) as a,
          FakeServer(content=caption, latency_s=0.2) as b):
        summary = _pipeline([a.url, b.url]).run([videos], tmp_path / "run", executor="local", show_progress=False)
        answered = {"a": len(a.requests), "b": len(b.requests)}
    assert (summary.videos, summary.completed, summary.errors) == (8, 8, 0)
    assert {r["caption"] for r in export_rows(tmp_path / "run", "videos")} == {caption}
    counters = json.loads((tmp_path / "run" / "manifest.json").read_text())["counters"]
    sent_a, sent_b = counters[f"caption.requests@{a.url}"], counters[f"caption.requests@{b.url}"]
    faults_a = counters.get(f"caption.faults@{a.url}", 0)
    assert answered == {"a": 2, "b": 6}, "a answered two, the survivor everything after"
    assert faults_a >= 1 and sent_a == 2 + faults_a, "every request to the dead replica after its second failed"
    assert sent_b == 6 and f"caption.faults@{b.url}" not in counters
    assert counters["caption.requests"] == sent_a + sent_b and counters["caption.retries"] == faults_a


def _one_line(output: str) -> str:
    """The error, one line after the plan, and no traceback."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in output, output
    assert [line for line in lines if "error" in line] == lines[-1:]
    return lines[-1]


def test_a_run_whose_only_endpoint_is_down_stops_before_the_first_video(tmp_path: Path) -> None:
    sets = endpoint_sets(RAW, REFUSED)
    for extra in ([], ["--dry-run"]):
        result = CliRunner().invoke(app, ["run", str(RAW), "-i", str(paths.SAMPLES_DIR), "-o", str(tmp_path / "r"),
                                          "--executor", "local", *sets, *extra], terminal_width=400)
        assert result.exit_code == 2, result.output
        line = _one_line(result.output)
        assert "stage caption: no endpoint serves model Qwen/Qwen2.5-VL-7B-Instruct" in line and REFUSED in line
        assert "does not answer" in line
        assert not (tmp_path / "r" / "stages").exists(), "no video started"


def test_a_run_whose_endpoint_serves_another_model_stops_before_the_first_video(tmp_path: Path) -> None:
    with FakeServer(models=["Qwen/Qwen2.5-VL-72B-Instruct"]) as server:
        for extra in ([], ["--dry-run"]):
            result = CliRunner().invoke(app, ["run", str(RAW), "-i", str(paths.SAMPLES_DIR), "-o",
                                              str(tmp_path / "r"), "--executor", "local",
                                              *endpoint_sets(RAW, server.url), *extra], terminal_width=400)
            assert result.exit_code == 2, result.output
            line = _one_line(result.output)
            assert f"{server.url} serves Qwen/Qwen2.5-VL-72B-Instruct, not Qwen/Qwen2.5-VL-7B-Instruct" in line
        assert server.requests == [], "not one chat request"
    assert not (tmp_path / "r" / "stages").exists()
