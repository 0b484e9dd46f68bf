"""Cost accounting against known fake costs: pool sizes, GPU-seconds per video and per masklet, and a served
stage's requests/s and output tokens/s, in `annotator status` and the manifest's cost table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.executors.ray import RayExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.rundir import RunDir
from annotator.stages.caption import CaptionStage
from annotator.stages.ingest import IngestStage
from annotator.status import collect, cost_table
from annotator.testing.fake_server import FakeServer
from annotator.testing.fake_stages import FakeDetect, FakePhrases, FakeTrack

pytestmark = pytest.mark.slow

CAPTION = "a rabbit sits under a tree while a butterfly flies by"  # 11 words: the fake server's output tokens
LATENCY_S, CONCURRENCY = 0.3, 2
DETECT_S, TRACK_S = 0.05, 0.01  # per keyframe; per frame and (1 + 0.3 x objects)


def test_status_shows_pool_sizes_gpu_seconds_and_served_rates(ray_cluster, clips: dict[str, Path],
                                                              tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    videos = [WorkRef(f"v{i}", str(clips["a" if i % 2 else "b"])) for i in range(6)]
    with FakeServer(content=CAPTION, latency_s=LATENCY_S) as server:
        stages = [IngestStage(target_fps=4, max_frames=8, keyframe_every=4),
                  CaptionStage(backend="openai", endpoint=server.url, model="served-vlm", num_frames=2,
                               max_concurrency=CONCURRENCY),
                  FakePhrases(), FakeDetect(cost_s=DETECT_S), FakeTrack(cost_s=TRACK_S)]
        gpus = {"detect": 0.5, "track": 0.25}
        pool = {"ingest": 1, "caption": 1, "phrases": 1, "detect": 2, "track": 1}
        export = ExportSpec("fake", "run1", {s.name: "fp" for s in stages})
        tasks = [StageTask(s, "fp", root, concurrency=pool[s.name], batch_size=3 if s.name == "caption" else 1,
                           cpus=0.1, gpus=gpus.get(s.name, 0.0), export=export if s.name == "track" else None)
                 for s in stages]
        started = datetime.now(UTC) - timedelta(seconds=1)
        rows = list(RayExecutor().run(tasks, videos))
        requests = len(server.requests)
    assert {r["status"] for r in rows} == {"ok"} and len(rows) == len(videos)
    run = RunDir(root)
    run.write_manifest({
        "run_id": "r1", "pipeline": {"name": "costs"}, "started": started.isoformat(), "finished": None,
        "stages": [{"stage": s.name, "gpus": gpus.get(s.name, 0.0)} for s in stages],
        "fingerprints": {s.name: "fp" for s in stages}, "inputs": {"count": len(videos)}})
    costs = {row["stage"]: row for row in cost_table(run, collect(run, run.read_manifest()))}

    assert {s: row["pool"] for s, row in costs.items()} == pool
    frames = {it["video_id"]: it for it in run.read_index("track").to_pylist()}
    masklets = sum(dict(r["counters"])["track.masklets"] for r in frames.values())
    assert masklets == 3 * len(videos), "FakePhrases finds three phrases, FakeTrack tracks each"
    infos = [run.load_item(r["video_id"], r["path"], [("ingest", ("info",), r["shard"])]).info
             for r in run.read_index("ingest").to_pylist()]
    slept = {"detect": sum(DETECT_S * len(i.keyframes) for i in infos),  # what the fakes sleep, at the least
             "track": sum(TRACK_S * len(i.frame_indices) * (1 + 0.3 * 3) for i in infos)}
    for stage in ("detect", "track"):
        row = costs[stage]
        assert row["gpu_s_per_video"] >= slept[stage] / len(videos) * gpus[stage], (stage, row)
        assert row["gpu_s_per_masklet"] == pytest.approx(row["gpu_s_per_video"] * len(videos) / masklets)
    for stage in ("ingest", "caption", "phrases"):
        assert costs[stage]["gpu_s_per_video"] is None and costs[stage]["gpu_s_per_masklet"] is None
    caption = costs["caption"]
    assert requests == len(videos)
    # each request takes at least the server's latency, at most CONCURRENCY at once: a rate no faster than that
    assert 0 < caption["requests_per_s"] <= CONCURRENCY / LATENCY_S
    assert caption["output_tokens_per_s"] == pytest.approx(caption["requests_per_s"] * len(CAPTION.split()))
    assert all(costs[s]["requests_per_s"] is None for s in ("ingest", "phrases", "detect", "track"))

    result = CliRunner().invoke(app, ["status", root], terminal_width=200)
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("cost"):]
    lines = {line.split()[0]: line.split() for line in table.splitlines()[1:] if line.strip()
             and line.split()[0] in pool}
    assert lines["detect"][1:4] == ["2", f"{costs['detect']['gpu_s_per_video']:.3g}",
                                    f"{costs['detect']['gpu_s_per_masklet']:.3g}"]
    assert lines["caption"][1:] == ["1", "-", "-", f"{caption['requests_per_s']:.3g}",
                                    f"{caption['output_tokens_per_s']:.3g}"]
    assert lines["ingest"][1:] == ["1", "-", "-", "-", "-"]
    json.dumps(costs)  # the manifest's cost table is JSON as it is
