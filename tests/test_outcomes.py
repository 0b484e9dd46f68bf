"""Where each input stands, from the latest index rows: a video short of a checkpoint (its row went with a lost
worker's buffer while the video went on downstream) is found, not counted as done; errors no index holds come
from the driver's rows."""

from __future__ import annotations

import pyarrow as pa

from annotator.outcomes import outcomes

STAGES = ["ingest", "detect", "gate", "assemble"]


def row(vid: str, status: str = "ok", reason: str = "", path: str = "") -> dict:
    return {"video_id": vid, "path": path or f"/v/{vid}.mp4", "status": status, "error_type": "E" if status ==
            "error" else "", "reason": reason}


def test_each_input_has_one_outcome_and_short_videos_are_found() -> None:
    latest = {
        "ingest": {v: row(v) for v in ("ok1", "torn", "bad", "held", "dull", "lost", "moved", "gone")},
        "detect": {"ok1": row("ok1"), "bad": row("bad", "error", "boom"), "held": row("held"), "dull": row("dull"),
                   "moved": row("moved", path="/elsewhere.mp4")},
        "gate": {"ok1": row("ok1"), "torn": row("torn"), "held": row("held", "pending", "awaiting review"),
                 "dull": row("dull", "filtered", "rejected by ann: dull")},
        "assemble": {"ok1": row("ok1"), "torn": row("torn")},  # torn: its detect row was never flushed
    }
    found = [(v, f"/v/{v}.mp4") for v in ("ok1", "torn", "bad", "held", "dull", "lost", "moved", "gone")]
    driver = [{"video_id": "lost", "stage": "detect", "error_type": "WorkerLost", "reason": "worker died"}]
    tables = {stage: pa.Table.from_pylist(list(rows.values())) for stage, rows in latest.items()}
    found_table = pa.Table.from_pylist([{"video_id": v, "path": p} for v, p in found])
    out = outcomes([(s, tables[s]) for s in STAGES], found_table, driver)
    assert dict(out.states) == {"ok": 1, "short": 3, "error": 2, "pending": 1, "filtered": 1}
    short = {vid: stage for vid, (_, stage) in out.short.items()}
    assert short == {"torn": "detect", "moved": "detect", "gone": "detect"}, "a row of another path is not it"
    assert [e["path"] for e in out.errors if e["video_id"] == "lost"] == ["/v/lost.mp4"]
    assert dict(out.reasons) == {"rejected by ann: dull": 1}
    rows = out.error_rows()
    assert [(r["video_id"], r["stage"], r["error_type"]) for r in rows] == [
        ("bad", "detect", "E"), ("gone", "detect", "CheckpointLost"), ("lost", "detect", "WorkerLost"),
        ("moved", "detect", "CheckpointLost"), ("torn", "detect", "CheckpointLost")]
    assert sum(out.states.values()) == len(found), "every input accounted for once"
