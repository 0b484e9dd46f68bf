"""Run directory: atomic writes, shards counted only once indexed, resume progress, garbage, stale exports."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from annotator import checkpoint, storage
from annotator.records import VideoItem
from annotator.rundir import INDEX_SCHEMA, RunDir


def test_write_bytes_is_whole_or_nothing_and_honours_the_umask(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.txt"
    storage.write_bytes(str(target), b"old")
    with monkeypatch.context() as m:
        m.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("killed before the rename")))
        with pytest.raises(KeyboardInterrupt):
            storage.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"], "no temp file left behind"
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        storage._umask.cache_clear()
        try:
            storage.write_bytes(str(target), b"new")
        finally:
            os.umask(old)
            storage._umask.cache_clear()
        assert stat.S_IMODE(target.stat().st_mode) == mode


def _index_row(vid: str, stage: str, fp: str, shard: str, status: str = "ok", finished: float = 1.0,
               generation: int = 1, worker: str = "w") -> dict:
    return {"video_id": vid, "path": f"/v/{vid}.mp4", "stage": stage, "fingerprint": fp, "shard": shard,
            "status": status, "error_type": "", "reason": "", "seconds": 0.1, "busy": 0.2, "node": "n1",
            "worker": worker, "finished": finished, "counters": {}, "generation": generation,
            "seq": int(finished * 10)}


def test_progress_counts_only_indexed_shards_of_todays_fingerprints(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    outputs = ("caption", "caption_model", "question")
    items = [VideoItem("a", "/v/a.mp4", caption="a rabbit", caption_model="m"),
             VideoItem("b", "/v/b.mp4", caption="a tree", caption_model="m")]
    run.write_shard("caption", "part-w-000001.parquet", checkpoint.encode(items, outputs))
    run.write_shard("caption", "part-w-000002.parquet", checkpoint.encode(items[:1], outputs))  # never indexed
    run.write_shard("ingest", "part-w-000001.parquet", checkpoint.encode([VideoItem("a", "/v/a.mp4")], ("info",)))
    run.write_index("ingest", "part-w-000001.parquet", [_index_row("a", "ingest", "f0", "part-w-000001.parquet"),
                                                        _index_row("b", "ingest", "f0", "part-w-000001.parquet")])
    run.write_index("caption", "part-w-000001.parquet", [
        _index_row("a", "caption", "f1", "part-w-000001.parquet"),
        _index_row("b", "caption", "old", "part-w-000001.parquet"),  # another configuration
    ])
    progress = run.settled([("ingest", "f0"), ("caption", "f1")])[0]
    assert {v: [r["stage"] for r in rows] for v, rows in progress.items()} == {"a": ["ingest", "caption"],
                                                                              "b": ["ingest"]}
    item = run.load_item("a", "/v/a.mp4", [("caption", outputs, "part-w-000001.parquet")])
    assert (item.caption, item.caption_model, item.stages_done) == ("a rabbit", "m", ["caption"])
    assert run.collect_garbage("caption") == 1
    assert [storage.name(f) for f in storage.list_files(run.stage_dir("caption"))] == ["part-w-000001.parquet"]
    run.compact_index("caption")
    run.write_index("caption", "part-x-000001.parquet", [
        _index_row("b", "caption", "f1", "", status="error", finished=2.0)])
    assert run.latest("caption", "f1")["b"]["status"] == "error"
    assert len(storage.list_files(run.index_dir("caption"))) == 2


def test_stage_shards_hold_typed_columns_not_json(tmp_path: Path) -> None:
    table = checkpoint.encode([VideoItem("a", "/a.mp4", caption="x")], ("caption", "caption_model", "question"))
    assert table.schema.names == ["video_id", "caption", "caption_model", "question"]
    assert table.schema.field("caption").type == pa.string()


def test_compaction_merges_every_part_into_one_drops_superseded_rows_and_answers_the_same(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for part, rows in enumerate([
        [_index_row("a", "track", "f1", "s1", finished=1.0), _index_row("b", "track", "f1", "s1", finished=1.0)],
        [_index_row("b", "track", "f1", "", status="error", finished=2.0)],  # supersedes b's first row
        [_index_row("c", "track", "old", "s3", finished=3.0), _index_row("d", "track", "f1", "s3", finished=3.0)],
    ]):
        run.write_index("track", f"part-w-{part:06d}.parquet", rows)
    before_rows = sorted((r["video_id"], r["fingerprint"], r["finished"]) for r in run.read_index("track").to_pylist())
    before_latest = run.latest("track", "f1")
    before_any, before_old = run.latest("track"), run.latest("track", "old")
    assert len(storage.list_files(run.index_dir("track"))) == 3
    run.compact_index("track")
    files = storage.list_files(run.index_dir("track"))
    assert len(files) == 1 and storage.name(files[0]).startswith("compacted-"), files
    after_rows = sorted((r["video_id"], r["fingerprint"], r["finished"]) for r in run.read_index("track").to_pylist())
    assert after_rows == [r for r in before_rows if r != ("b", "f1", 1.0)], "only b's superseded row went"
    assert run.latest("track", "f1") == before_latest
    assert (run.latest("track"), run.latest("track", "old")) == (before_any, before_old)
    assert {v: r["status"] for v, r in before_latest.items()} == {"a": "ok", "b": "error", "d": "ok"}
    run.write_index("track", "part-x-000001.parquet", [_index_row("a", "track", "f1", "", status="error",
                                                                  finished=4.0)])
    run.compact_index("track")  # a compacted file and a new part merge again
    (merged,) = storage.list_files(run.index_dir("track"))
    assert storage.read_table(merged).num_rows == 4 and run.latest("track", "f1")["a"]["status"] == "error"


def test_the_newest_row_is_chosen_by_generation_worker_and_sequence_never_by_clock(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    legacy = [{k: v for k, v in _index_row(v, "track", "f1", "old", finished=t).items()
               if k not in ("generation", "seq")}  # a run directory from before generations
              for v, t in (("a", 9.0), ("b", 5.0), ("b", 6.0))]
    old_schema = pa.schema([f for f in INDEX_SCHEMA if f.name not in ("generation", "seq")])
    storage.write_table(storage.join(run.index_dir("track"), "part-old-000001.parquet"),
                        pa.Table.from_pylist(legacy, schema=old_schema))
    run.write_index("track", "part-w-000001.parquet", [
        _index_row("a", "track", "f1", "new", status="error", finished=1.0, generation=2),  # its clock runs late
        _index_row("c", "track", "f1", "c2", finished=1.0, generation=2, worker="z"),
        _index_row("c", "track", "f1", "c3", finished=0.5, generation=3, worker="a")])
    for _ in range(2):  # the same before and after compaction
        latest = run.latest("track", "f1")
        assert latest["a"]["status"] == "error", "generation 2 is newer than any row from before generations"
        assert latest["b"]["finished"] == 6.0, "rows from before generations keep their time order"
        assert latest["c"]["shard"] == "c3", "a later generation wins whatever its worker or clock"
        narrow = run.newest_rows("track", "f1", ["video_id", "shard"])  # a projection reads the order columns too
        assert narrow.column_names == ["video_id", "shard"]
        assert dict(zip(*narrow.to_pydict().values(), strict=True)) == {"a": "new", "b": "old", "c": "c3"}
        assert sorted(run.read_index("track", ["shard"])["shard"].to_pylist()) == (
            ["c2", "c3", "new", "old", "old", "old"] if _ == 0 else ["c3", "new", "old"])
        run.compact_index("track")


def test_a_read_that_races_a_compaction_lists_again_and_loses_no_row(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunDir(tmp_path)
    for i in range(4):
        run.write_index("track", f"part-w-{i:06d}.parquet",
                        [_index_row(f"v{i}", "track", "f1", f"s{i}", finished=1.0 + i)])
    original, calls = storage.read_tables, []

    def compacted_between(paths: list[str], *args: object, **kwargs: object) -> list[pa.Table]:
        if kwargs.get("missing_ok"):  # the index read's own (compaction reads through here too)
            calls.append(len(paths))
            if len(calls) == 1:  # the driver's compactor runs after this read listed the parts, before it reads
                run.compact_index("track")
        return original(paths, *args, **kwargs)

    monkeypatch.setattr(storage, "read_tables", compacted_between)
    rows = run.read_index("track", ["video_id", "shard"])
    assert calls == [4, 1], "the parts were gone: listed again, it read the one compacted file"
    assert sorted(rows["video_id"].to_pylist()) == ["v0", "v1", "v2", "v3"]
    assert sorted(rows["shard"].to_pylist()) == ["s0", "s1", "s2", "s3"]
