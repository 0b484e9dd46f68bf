from pathlib import Path

import pytest

from annotator.records import ItemError, VideoItem
from annotator.rundir import RunDir, atomic_write


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_stage_output_is_reused_only_with_the_same_fingerprint(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    item = VideoItem(video_id="v1", path="/x/v1.mp4", caption="a rabbit", stages_done=["ingest", "caption"])
    run.write_stage_output("caption", item, "abc")
    assert run.read_stage_output("caption", "v1", "abc") == item
    assert run.read_stage_output("caption", "v1", "other") is None
    assert run.read_stage_output("caption", "v2", "abc") is None
    run.stage_path("caption", "v3").write_bytes(b"not parquet")
    assert run.read_stage_output("caption", "v3", "abc") is None
    assert run.completed_videos("caption") == ["v1", "v3"]


def test_errors_table(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    ok = VideoItem(video_id="a", path="/a.mp4")
    bad = VideoItem(video_id="b", path="/b.mp4", error=ItemError("ingest", "VideoError", "/b.mp4: corrupt"))
    run.write_errors([ok, bad])
    rows = run.read_errors().to_pylist()
    assert rows == [{"video_id": "b", "path": "/b.mp4", "stage": "ingest", "error_type": "VideoError",
                     "message": "/b.mp4: corrupt"}]
