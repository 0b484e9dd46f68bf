"""The Ray executor produces the same dataset as the local one (embedded cluster, logical GPUs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from annotator.config import ConfigError
from annotator.executors.ray import RayExecutor, _check_custom, fit_to_cluster, fuse
from annotator.executors.runner import StageTask, WorkRef
from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stage import Stage
from annotator.stages.caption import CaptionStage
from annotator.stages.link import LinkStage
from tests.helpers import demo_pipeline, export_rows

pytestmark = pytest.mark.slow


def test_ray_and_local_give_identical_texts_and_masks(clips: dict[str, Path], tiny_models, ray_cluster,
                                                       tmp_path: Path) -> None:
    inputs = [clips["a"], clips["b"], clips["broken"]]
    local = demo_pipeline().run(inputs, tmp_path / "local", executor="local", show_progress=False)
    on_ray = demo_pipeline().run(inputs, tmp_path / "ray", executor="ray", show_progress=False)
    assert (on_ray.completed, on_ray.errors) == (local.completed, local.errors) == (2, 1)
    assert on_ray.qa == local.qa >= 1
    key = ("video_id", "qa_id", "question", "answer", "object_ids")
    assert [{k: r[k] for k in key} for r in export_rows(tmp_path / "ray", "qa")] == [
        {k: r[k] for k in key} for r in export_rows(tmp_path / "local", "qa")
    ]
    assert export_rows(tmp_path / "ray", "objects") == export_rows(tmp_path / "local", "objects")


def test_resources_are_scaled_to_fit_a_small_cluster() -> None:
    tasks = [StageTask(LinkStage(), "f", "/tmp", concurrency=2, batch_size=1, cpus=1.0, gpus=0.5) for _ in range(4)]
    fitted = fit_to_cluster(tasks, cpus=2.0, gpus=2.0)
    assert sum(t.cpus * t.concurrency for t in fitted) <= 2.0 * 0.9 + 1e-6
    assert sum(t.gpus * t.concurrency for t in fitted) <= 2.0 + 1e-6
    assert fit_to_cluster(tasks[:1], cpus=16, gpus=4)[0].cpus == 1.0


def test_a_custom_resource_no_node_offers_is_a_one_line_error() -> None:
    task = StageTask(LinkStage(), "f", "/tmp", concurrency=1, batch_size=1, cpus=1.0, gpus=0.0, custom={"a100": 0.01})
    _check_custom([task], {"CPU": 2.0, "a100": 1.0})
    with pytest.raises(ConfigError, match=r"custom resource a100=0.01, but the Ray cluster has 0.0") as err:
        _check_custom([task], {"CPU": 2.0})
    assert "\n" not in str(err.value) and "--resources='{\"a100\": 0.01}'" in str(err.value)


@dataclass
class BatchProbe(Stage):
    """Counts, on each item, the size of the batch it was processed in."""

    name: ClassVar[str] = "probe_a"
    outputs: ClassVar[tuple[str, ...]] = ()

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        for item in batch:
            item.counters[f"{self.name}.batch"] = len(batch)
        return batch


@dataclass
class OtherProbe(BatchProbe):
    name: ClassVar[str] = "probe_b"


def test_fused_stages_keep_their_own_batch_sizes(ray_cluster, tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    tasks = [StageTask(BatchProbe(), "fa", root, concurrency=1, batch_size=2, cpus=0.1, gpus=0.0),
             StageTask(OtherProbe(), "fb", root, concurrency=1, batch_size=5, cpus=0.1, gpus=0.0)]
    assert len(fuse(tasks)) == 1
    rows = list(RayExecutor().run(tasks, [WorkRef(f"v{i}", f"/fake/v{i}.mp4") for i in range(10)]))
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}
    run = RunDir(root)
    for stage, size in (("probe_a", 2), ("probe_b", 5)):
        sizes = [dict(r["counters"])[f"{stage}.batch"] for r in run.read_index(stage).to_pylist()]
        assert sizes == [size] * 10, (stage, sizes)


def test_a_served_stage_never_shares_a_pool() -> None:
    served = CaptionStage(backend="openai", endpoint="http://127.0.0.1:9/v1", model="served-vlm")
    tasks = [StageTask(stage, "f", "/tmp", concurrency=1, batch_size=1, cpus=0.5, gpus=0.0)
             for stage in (LinkStage(), served, LinkStage(), LinkStage())]
    assert [[t.stage is served for t in group] for group in fuse(tasks)] == [[False], [True], [False, False]]
