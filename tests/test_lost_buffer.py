"""A worker lost with checkpoints it had not flushed yet, while the videos went on downstream: the same run finds
those videos short of a checkpoint and redoes them from there, so it ends with every video done once, 0 errors,
and the dataset of an undisturbed run. The fault is scripted: the stage kills its own worker process once, on a
named video, after the earlier videos have left it."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from annotator.rundir import RunDir
from tests.fake_flow import flow_specs, marks
from tests.helpers import export_rows

pytestmark = pytest.mark.slow
VIDEOS = 6


def config(marker: str, flush_rows: int, crashes: int) -> PipelineConfig:
    specs = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    specs.insert(2, {"stage": "fake-crash", "params": {"victim": f"v{VIDEOS - 1}", "marker": marker,
                                                       "times": crashes}})
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
        summary = Pipeline(config(str(marker), flush_rows=100, crashes=1)).run(
            [folder], tmp_path / "run", executor="ray", show_progress=False)
    assert marks(str(marker)) == 1, "the worker was killed, once"
    assert (summary.completed, summary.errors) == (VIDEOS, 0)
    assert "lost checkpoints with a worker; redoing them" in caplog.text
    run = RunDir(str(tmp_path / "run"))
    assert run.read_manifest()["counts"]["short"] == 0
    assert len(run.final_items()) == VIDEOS
    assert sorted(run.latest("fake-crash")) == [f"v{i}" for i in range(VIDEOS)]

    undisturbed = tmp_path / "undisturbed"
    Pipeline(config(str(tmp_path / "calm"), flush_rows=1, crashes=0)).run([folder], undisturbed, executor="local",
                                                                         show_progress=False)
    assert dataset(tmp_path / "run") == dataset(undisturbed) and len(dataset(undisturbed)) >= VIDEOS
