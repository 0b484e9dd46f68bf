"""Every export format is written video by video: the exporter never holds more than the video it is writing
(counted through weak references to the items the run directory hands out), and what it writes names every
video. Parquet is merged part by part (one row group per current part)."""

from __future__ import annotations

import json
import shutil
import weakref
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotator.config import PipelineConfig
from annotator.export.base import ExportOptions, exporter, exporter_names
from annotator.pipeline import Pipeline
from annotator.records import VideoItem
from annotator.rundir import RunDir
from tests.fake_flow import flow_specs

VIDEOS = 6


@pytest.fixture(scope="module")
def run(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    """The fake flow (two sampled frames of a real clip, three tracked objects per video) over six videos."""
    root = tmp_path_factory.mktemp("streaming")
    inputs = root / "in"
    inputs.mkdir()
    for i in range(VIDEOS):
        shutil.copy(clips["a"], inputs / f"v{i}.mp4")
    stages = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]},
                                      "batch_size": 2}]  # with flush_rows 2: an export part per two videos
    config = {"name": "stream", "stages": stages, "executor": {"flush_rows": 2}}
    summary = Pipeline(PipelineConfig.model_validate(config)).run(
        [inputs], root / "run", executor="local", show_progress=False)
    assert summary.completed == VIDEOS
    return RunDir(str(root / "run"))


class Live:
    """How many items handed out by the run directory are alive at once, at most."""

    def __init__(self) -> None:
        self.now = self.peak = self.total = 0

    def track(self, items: Iterator[VideoItem]) -> Iterator[VideoItem]:
        for item in items:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
            weakref.finalize(item, self._gone)
            yield item
            del item

    def _gone(self) -> None:
        self.now -= 1


def test_every_format_holds_one_video_at_a_time(run: RunDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = Live()
    original = RunDir.iter_final_items
    monkeypatch.setattr(RunDir, "iter_final_items", lambda self: live.track(original(self)))
    names = exporter_names()
    assert set(names) >= {"parquet", "coco", "ytvis", "videoglamm-a", "videoglamm-b", "cvat", "cvat-images",
                          "grandf", "points"}
    for name in names:
        live.peak = live.total = 0
        out = tmp_path / name
        done = exporter(name).write(run, out, ExportOptions())
        assert done.videos == VIDEOS, name
        if name != "parquet":
            assert live.total >= VIDEOS, name  # it read the videos from the run directory, one by one
            assert live.peak <= 2, (name, live.peak)  # the one being written, and the next being rebuilt
        assert set(_videos(name, out)) == {f"v{i}" for i in range(VIDEOS)}, name


def _videos(name: str, out: Path) -> list[str]:
    """The video ids a format's output names, read back the way its readers read it."""
    if name == "parquet":
        return pq.read_table(out / "videos.parquet").column("video_id").to_pylist()
    if name in ("coco", "ytvis"):
        data = json.loads(next(out.glob("*.json")).read_text())
        return [v["name"] for v in data["videos"]]
    if name == "videoglamm-b":
        data = json.loads((out / "video_gcg" / "instruction_data" / "train.json").read_text())
        assert all("dense_cap" in v for v in data["videos"])
        return [v["name"] for v in data["videos"]]
    if name == "videoglamm-a":
        return [p.stem for p in (out / "vidstg_gcg" / "train_captions").glob("*.json")]
    if name.startswith("cvat"):
        return [p.parent.name for p in out.glob("*/annotations.xml")]
    if name == "grandf":
        return [e["file_name"].split("/")[0] for e in json.loads((out / "grandf.json").read_text())]
    return [json.loads(line)["video_id"] for line in (out / "points.jsonl").read_text().splitlines()]


def test_parquet_is_merged_part_by_part(run: RunDir, tmp_path: Path) -> None:
    exporter("parquet").write(run, tmp_path, ExportOptions())
    finished = run.finished_table()
    for table in ("videos", "objects", "qa"):
        parts = [data for _, data in run.current_parts(table, finished=finished) if data.num_rows]
        merged = pq.ParquetFile(tmp_path / f"{table}.parquet")
        assert merged.metadata.num_row_groups == len(parts) > 1, table  # never the whole table at once
        assert merged.read().sort_by("video_id").equals(run.read_export(table)), table
