"""A worker lost with checkpoints it had not flushed yet, while the videos went on downstream: the same run finds
those videos short of a checkpoint and redoes them from there, so it ends with every video done once, 0 errors,
and the dataset of an undisturbed run. The fault is scripted: the stage kills its own worker process once, on a
named video, after the earlier videos have left it."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stage import PerItemStage, register
from tests.fake_flow import flow_specs
from tests.helpers import export_rows

pytestmark = pytest.mark.slow
VIDEOS = 6


@register
@dataclass
class CrashOnce(PerItemStage):
    """Ends its worker's process (as the OOM killer would) on `video`, once: `marker` records that it did."""

    name = "fake-crash-once"
    outputs = ()

    video: str = ""
    marker: str = ""

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.video_id == self.video and self.marker and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return item


def config(marker: str, flush_rows: int) -> PipelineConfig:
    specs = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    specs.insert(2, {"stage": "fake-crash-once", "params": {"video": f"v{VIDEOS - 1}", "marker": marker}})
    return PipelineConfig.model_validate({"name": "lost", "executor": {"flush_rows": flush_rows, "flush_s": 600},
                                          "stages": [{**s, "batch_size": 1} for s in specs]})


def dataset(root: Path) -> list:
    return [(r["video_id"], r["object_id"], r["frame_indices"], r["mask_rles"]) for r in export_rows(root, "objects")]


def test_a_lost_unflushed_buffer_is_redone_in_the_same_run(ray_cluster, clips: dict[str, Path], tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(VIDEOS):
        shutil.copy(clips["a"], folder / f"v{i}.mp4")
    marker = tmp_path / "crashed"
    with caplog.at_level(logging.WARNING, logger="annotator.pipeline"):
        summary = Pipeline(config(str(marker), flush_rows=100)).run([folder], tmp_path / "run", executor="ray",
                                                                    show_progress=False)
    assert marker.exists(), "the worker was killed"
    assert (summary.completed, summary.errors) == (VIDEOS, 0)
    assert "lost checkpoints with a worker; redoing them" in caplog.text
    run = RunDir(str(tmp_path / "run"))
    assert run.read_manifest()["counts"]["short"] == 0
    assert len(run.final_items()) == VIDEOS
    assert sorted(run.latest("fake-crash-once")) == [f"v{i}" for i in range(VIDEOS)]

    undisturbed = tmp_path / "undisturbed"
    Pipeline(config("", flush_rows=1)).run([folder], undisturbed, executor="local", show_progress=False)
    assert dataset(tmp_path / "run") == dataset(undisturbed) and len(dataset(undisturbed)) >= VIDEOS
