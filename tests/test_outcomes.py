"""Where each input stands, from the latest index rows: a video short of a checkpoint (its row went with a lost
worker's buffer while the video went on downstream) is found, not counted as done; errors no index holds come
from the driver's rows."""

from __future__ import annotations

import pyarrow as pa

from annotator.outcomes import Outcomes, Walk

STAGES = ["ingest", "detect", "gate", "assemble"]


def row(vid: str, status: str = "ok", reason: str = "", path: str = "") -> dict:
    return {"video_id": vid, "path": path or f"/v/{vid}.mp4", "status": status, "error_type": "E" if status ==
            "error" else "", "reason": reason}


def _walk(tables: dict[str, pa.Table], found: pa.Table, driver: list[dict], batch: int) -> Outcomes:
    walk = Walk(found, driver)
    for stage in STAGES:
        walk.begin(stage)
        for start in range(0, tables[stage].num_rows, batch):
            walk.add(tables[stage].slice(start, batch))
        walk.end()
    return walk.outcomes()


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
    out = _walk(tables, found_table, driver, batch=100)
    batched = _walk(tables, found_table, driver, batch=2)  # the end of a run reads row groups
    assert (batched.states, batched.reasons, batched.short) == (out.states, out.reasons, out.short)
    assert sorted(map(str, batched.errors)) == sorted(map(str, out.errors))
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


def test_stage_figures_are_the_same_folded_in_batches() -> None:
    """`status` and the end of a run fold a stage's rows a row group at a time: counts, seconds, nodes, counters,
    served tokens and the working span come out as from the whole table, also when one call's rows are split."""
    from annotator.status import StageFold

    rows = pa.Table.from_pylist([
        {"video_id": f"v{i}", "path": f"/v{i}.mp4", "status": "error" if i == 3 else "ok", "error_type": "",
         "reason": "", "seconds": 0.5, "busy": 1.0, "node": f"n{i % 2}", "worker": "w", "finished": 10.0 + i // 2,
         "counters": [("caption.requests", 1), ("caption.output_tokens", 7 * i)]}
        for i in range(6)],  # calls of two videos each: (10, 11, 12)
        schema=pa.schema([("video_id", pa.string()), ("path", pa.string()), ("status", pa.string()),
                          ("error_type", pa.string()), ("reason", pa.string()), ("seconds", pa.float64()),
                          ("busy", pa.float64()), ("node", pa.string()), ("worker", pa.string()),
                          ("finished", pa.float64()), ("counters", pa.map_(pa.string(), pa.int64()))]))
    entry = {"stage": "caption", "gpus": 1.0}
    whole_fold = StageFold(entry, started=0.0)
    whole_fold.add(rows)
    whole = whole_fold.result()
    fold = StageFold(entry, started=0.0)
    for start in (0, 3):  # the call ending at 11 is split between the batches
        fold.add(rows.slice(start, 3))
    batched = fold.result()
    assert batched == whole
    assert (whole.counts["ok"], whole.counts["error"], whole.busy, whole.nodes) == (5, 1, 6.0, ["n0", "n1"])
    assert (whole.requests, whole.tokens, whole.span) == (6, 105, 4.0), "calls of 2 s each, ending at 10 to 12"
