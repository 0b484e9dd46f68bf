"""The driver never holds items: 300 fake videos with real masks through the Ray executor yield only id/status
rows, and the export exists as parts written by workers while the run was going, one per flush of 40 videos."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotator import masks
from annotator.executors.ray import RayExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.rundir import RunDir
from annotator.testing.fake_stages import fake_stages

pytestmark = pytest.mark.slow
FLUSH = 40


def tasks(root: str, **costs: float) -> list[StageTask]:
    stages = fake_stages(**costs)
    export = ExportSpec("fake", "run1", {s.name: "fp" for s in stages})
    return [StageTask(s, f"fp-{s.name}", root, concurrency=1, batch_size=8, cpus=0.2, gpus=0.0,
                      export=export if i == len(stages) - 1 else None, flush_rows=FLUSH) for i, s in enumerate(stages)]


def test_driver_receives_only_status_rows_and_the_export_grows_during_the_run(ray_cluster, tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    refs = [WorkRef(f"v{i:04d}", f"/fake/v{i:04d}.mp4") for i in range(300)]
    run = RunDir(root)
    received, parts_seen = [], []
    for row in RayExecutor(show_progress=False).run(tasks(root, caption_s=0.0, detect_s=0.0, track_s=0.0), refs):
        received.append(row)
        parts_seen.append(len(run.export_parts("objects")))  # how much export existed when this row arrived
    assert len(received) == 300 and {r["video_id"] for r in received} == {r.video_id for r in refs}
    assert all(set(r) == {"video_id", "status", "stage", "error_type", "reason"} for r in received)
    assert all(isinstance(v, str) for r in received for v in r.values())
    assert {(r["status"], r["stage"]) for r in received} == {("ok", "assemble")}
    parts = run.export_parts("objects")
    assert len(parts) == -(-300 // FLUSH), "one part per flush of the last stage's one worker, the rest at its end"
    # the worker flushes every 40 videos, so rows arrive while most of the export does not exist yet, and the last
    # part is written when the stream ends
    assert parts_seen[0] < len(parts) // 2, parts_seen[:5]
    assert parts_seen == sorted(parts_seen) and parts_seen[-1] == len(parts) - 1, "the export grew during the run"
    objects = pq.read_table(parts[0]).to_pylist()
    assert len(objects) == 3 * FLUSH and objects[0]["height"] == 180
    decoded = masks.decode_batch(objects[0]["mask_rles"], 180, 320)
    assert decoded.shape == (16, 180, 320) and decoded.any(axis=(1, 2)).all()
