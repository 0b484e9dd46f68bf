"""The Ray stream scheduler: each pool batches its own way, every video comes back as one row, a video that kills
its worker or hangs past its deadline is the only error (naming the loss), and the Ray Data form of the executor
gives the same dataset. The embedded cluster is gone, every process of it, once the executor is stopped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotator.executors.ray import RayExecutor, _actor_class, fuse
from annotator.executors.ray_chain import chain
from annotator.executors.ray_stream import Pool, StreamScheduler
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stage import PerItemStage
from annotator.testing.fake_stages import fake_stages
from tests.fake_flow import Crash, marks

pytestmark = pytest.mark.slow


def part_rows(root: Path, table: str) -> list[dict]:
    """Every row of the export parts the workers wrote (no manifest needed: these runs bypass `Pipeline`)."""
    rows = [r for p in RunDir(str(root)).export_parts(table) for r in pq.read_table(p).to_pylist()]
    return sorted(rows, key=lambda r: (r["video_id"], r.get("object_id") or r.get("qa_id") or ""))


def refs(n: int) -> list[WorkRef]:
    return [WorkRef(f"v{i:02d}", f"/fake/v{i:02d}.mp4") for i in range(n)]


def test_each_pool_batches_its_own_way_and_every_video_comes_back(ray_cluster) -> None:
    ray = ray_cluster

    class Step:
        """Appends the size of the batch it was called with to each input's history."""

        def __init__(self, last: bool) -> None:
            self.last = last

        def ready(self) -> str:
            return "node"

        def run(self, *inputs: WorkRef | str) -> object:
            texts = [f"{x.video_id}|" if isinstance(x, WorkRef) else x for x in inputs]
            out = [f"{t}{len(inputs)}," for t in texts]
            rows = [{"video_id": t.split("|")[0], "status": "ok", "stage": "c", "error_type": "",
                     "reason": t.split("|")[1]} for t in out]
            if self.last:
                return {"node": "n", "rows": rows}
            return (*out, {"node": "n", "done": [[] for _ in out], "rows": rows})

    def pool(name: str, size: int, batch: int, last: bool = False) -> Pool:
        return Pool(name, [ray.remote(Step).options(num_cpus=0.1).remote(last) for _ in range(size)], batch)

    rows = list(StreamScheduler([pool("a", 1, 3), pool("b", 2, 2), pool("c", 1, 4, last=True)], refs(11)).run())
    assert sorted(r["video_id"] for r in rows) == [f"v{i:02d}" for i in range(11)]
    sizes = [r["reason"].rstrip(",").split(",") for r in rows]
    per_pool = [Counter(s[i] for s in sizes) for i in range(3)]
    # only the last batch of each pool is partial: 11 = 3+3+3+2 = 2*5+1 = 4+4+3 (counted per video)
    assert per_pool[0] == {"3": 9, "2": 2}
    assert per_pool[1] == {"2": 10, "1": 1}
    assert per_pool[2] == {"4": 8, "3": 3}


@dataclass
class Hang(PerItemStage):
    """Hangs on one video (a wedged kernel, a stalled mount), each time counted by a marker file."""

    name = "hang"
    outputs = ()

    victim: str = "v03"
    marker: str = ""

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.video_id == self.victim:
            Path(f"{self.marker}{marks(self.marker)}").touch()
            time.sleep(3600)
        return item


def tasks(root: str, *faults: PerItemStage, batch: int = 1, timeout_s: float = 1800.0) -> list[StageTask]:
    """The fake flow with `faults` after ingest, each in its own pool (with `fuse_cpu_stages=False`); `timeout_s`
    is their calls' deadline."""
    stages = [*fake_stages(caption_s=0.0, detect_s=0.0, track_s=0.0)]
    stages[1:1] = faults
    export = ExportSpec("fake", "run1", {s.name: "fp" for s in stages})
    return [StageTask(s, f"fp-{s.name}", root, concurrency=1, batch_size=batch, cpus=0.2, gpus=0.0,
                      export=export if i == len(stages) - 1 else None,
                      call_timeout_s=timeout_s if s in faults else 1800.0) for i, s in enumerate(stages)]


def test_a_video_that_kills_its_worker_or_hangs_ends_as_the_only_error(ray_cluster, tmp_path: Path) -> None:
    crash = Crash(victim="v03", marker=str(tmp_path / "crash"), times=99)
    hang = Hang(victim="v05", marker=str(tmp_path / "hang"))
    work = refs(8)
    run = RayExecutor(fuse_cpu_stages=False).run(tasks(str(tmp_path / "run"), crash, hang, batch=3, timeout_s=2.0),
                                                 work)
    rows = {r["video_id"]: r for r in run}
    assert sorted(rows) == [r.video_id for r in work]
    assert {v for v, r in rows.items() if r["status"] != "ok"} == {"v03", "v05"}, rows
    assert rows["v03"]["stage"] == "fake-crash" and rows["v03"]["reason"].startswith("worker lost: ")
    assert rows["v05"]["stage"] == "hang" and rows["v05"]["reason"].startswith("call timed out after 2 s"), rows
    assert len(list(tmp_path.glob("crash*"))) == 2, "its batch, then itself alone: two deaths, no more"
    assert len(list(tmp_path.glob("hang*"))) == 2, "in its batch, then alone: two hangs, each cut at the deadline"
    assert {r["video_id"] for r in part_rows(tmp_path / "run", "qa")} == {r.video_id for r in work} - {"v03", "v05"}


def test_a_worker_lost_once_costs_nothing(ray_cluster, tmp_path: Path) -> None:
    crash = Crash(marker=str(tmp_path / "crash"), times=1)
    work = refs(8)
    rows = list(RayExecutor(fuse_cpu_stages=False).run(tasks(str(tmp_path / "run"), crash, batch=3), work))
    assert sorted((r["video_id"], r["status"]) for r in rows) == [(r.video_id, "ok") for r in work]
    assert len(list(tmp_path.glob("crash*"))) == 1


@dataclass
class Unreachable(PerItemStage):
    """Cannot start on a worker (as a run directory a node cannot reach would)."""

    name = "unreachable"
    outputs = ()

    def bind(self, run_root: str) -> None:
        raise PermissionError(f"cannot open {run_root}: access denied")

    def process_item(self, item: VideoItem) -> VideoItem:
        return item


def test_a_pool_that_cannot_start_ends_its_videos_as_errors_not_a_hang(ray_cluster, tmp_path: Path) -> None:
    stages = [*tasks(str(tmp_path / "run"))]
    stages.insert(2, StageTask(Unreachable(), "fp-u", str(tmp_path / "run"), concurrency=1, batch_size=2, cpus=0.1,
                               gpus=0.0))
    rows = list(RayExecutor(fuse_cpu_stages=False).run(stages, refs(40)))
    assert sorted(r["video_id"] for r in rows) == [r.video_id for r in refs(40)]
    assert {(r["status"], r["stage"]) for r in rows} == {("error", "unreachable")}
    assert all("access denied" in r["reason"] for r in rows), rows[0]


def test_the_ray_data_form_gives_the_same_dataset(ray_cluster, tmp_path: Path) -> None:
    work = refs(6)
    stream = [r["video_id"] for r in RayExecutor().run(tasks(str(tmp_path / "stream")), work)]
    data_tasks = tasks(str(tmp_path / "data"))
    groups = fuse(data_tasks)
    outputs = {t.stage.name: t.stage.outputs for t in data_tasks}
    classes = [_actor_class(g, outputs, i == len(groups) - 1, None) for i, g in enumerate(groups)]
    data = [r["video_id"] for r in chain(groups, classes, work)]
    assert sorted(stream) == sorted(data) == [r.video_id for r in work]
    for table in ("qa", "objects"):
        assert part_rows(tmp_path / "stream", table) == part_rows(tmp_path / "data", table) != []


def test_the_embedded_cluster_is_gone_once_stopped(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import psutil, ray
        from annotator.executors.ray import RayExecutor
        from tests.executors.test_stream import refs, tasks
        executor = RayExecutor(num_cpus=2)
        rows = list(executor.run(tasks({str(tmp_path / "run")!r}), refs(3)))
        assert [r["status"] for r in rows] == ["ok"] * 3, rows
        assert ray.is_initialized()
        executor.stop()
        assert not ray.is_initialized()
        left = [" ".join(p.cmdline())[:80] for p in psutil.Process().children(recursive=True)]
        print("left:", left)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "left: []" in done.stdout, done.stdout
