"""Error isolation and checkpointing around a stage, with small fake stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from annotator import storage
from annotator.executors.local import LocalExecutor
from annotator.executors.runner import StageRunner, StageTask, WorkRef
from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stage import PerItemStage, Stage

CALLS: list[str] = []


@dataclass
class Upper(PerItemStage):
    name = "upper"
    outputs = ("caption",)

    def process_item(self, item: VideoItem) -> VideoItem:
        CALLS.append(item.video_id)
        if "bad" in item.video_id:
            raise ValueError(f"{item.path}: cannot read")
        item.caption = item.video_id.upper()
        return item


@dataclass
class Loses(Stage):
    name = "loses"

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        return batch[:1]


@dataclass
class BrokenSetup(Stage):
    name = "broken"

    def setup(self) -> None:
        raise OSError("model weights not found at /nowhere")

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        return batch


def task(stage: Stage, root: Path, fingerprint: str = "f1") -> StageTask:
    return StageTask(stage, fingerprint, str(root), concurrency=1, batch_size=2, cpus=1, gpus=0)


def items(*ids: str) -> list[VideoItem]:
    return [VideoItem(video_id=i, path=f"/data/{i}.mp4") for i in ids]


def test_one_failure_stays_with_its_item(tmp_path: Path) -> None:
    runner = StageRunner(task(Upper(), tmp_path))
    out = runner(items("a", "bad", "c"))
    runner.close()
    assert [it.caption for it in out] == ["A", None, "C"]
    assert out[1].error is not None
    assert (out[1].error.stage, out[1].error.error_type) == ("upper", "ValueError")
    assert "/data/bad.mp4" in out[1].error.message
    run = RunDir(str(tmp_path))
    (shard,) = [storage.name(f) for f in storage.list_files(run.stage_dir("upper"))]
    assert storage.read_table(storage.join(run.stage_dir("upper"), shard)).column("video_id").to_pylist() == [
        "a", "c"], "one shard per flush, holding the items that finished"
    index = {r["video_id"]: r for r in run.read_index("upper").to_pylist()}
    assert {v: (r["status"], r["shard"]) for v, r in index.items()} == {
        "a": ("ok", shard), "bad": ("error", ""), "c": ("ok", shard)}
    assert index["bad"]["error_type"] == "ValueError" and "/data/bad.mp4" in index["bad"]["reason"]


def test_a_missing_result_is_an_error_not_a_silent_drop(tmp_path: Path) -> None:
    out = StageRunner(task(Loses(), tmp_path))(items("a", "b"))
    assert [it.video_id for it in out] == ["a", "b"]
    assert out[0].error is None and out[1].error is not None and "no result" in out[1].error.message


def test_setup_failure_marks_every_pending_item(tmp_path: Path) -> None:
    out = StageRunner(task(BrokenSetup(), tmp_path))(items("a", "b"))
    assert all(it.error is not None and "/nowhere" in it.error.message for it in out)


def test_finished_items_are_skipped_and_errors_pass_through(tmp_path: Path) -> None:
    CALLS.clear()
    runner = StageRunner(task(Upper(), tmp_path))
    first = runner(items("a", "bad"))
    assert CALLS == ["a", "bad"]
    again = runner(first)
    assert CALLS == ["a", "bad"], "a is done and bad carries its error: nothing recomputed"
    assert [it.caption for it in again] == ["A", None]


def test_local_executor_rebuilds_resumed_items_from_their_shards(tmp_path: Path) -> None:
    CALLS.clear()
    rows = list(LocalExecutor(show_progress=False).run([task(Upper(), tmp_path)],
                                                       [WorkRef("a", "/data/a.mp4"), WorkRef("bad", "/data/bad.mp4")]))
    assert [(r["video_id"], r["status"]) for r in rows] == [("a", "ok"), ("bad", "error")]
    shard = RunDir(str(tmp_path)).latest("upper", "f1")["a"]["shard"]
    item = RunDir(str(tmp_path)).load_item("a", "/data/a.mp4", [("upper", Upper.outputs, shard)])
    assert item.caption == "A" and item.stages_done == ["upper"]


def test_checkpoints_are_flushed_every_n_rows_and_at_close_in_a_clock_free_order(tmp_path: Path) -> None:
    runner = StageRunner(replace(task(Upper(), tmp_path), flush_rows=3, generation=4))
    run = RunDir(str(tmp_path))
    for i in range(7):
        runner(items(f"v{i}"))
        flushed = (i + 1) // 3
        assert len(storage.list_files(run.index_dir("upper"))) == flushed, f"after {i + 1} videos"
        assert len(storage.list_files(run.stage_dir("upper"), ".parquet")) == flushed
    assert len(run.read_index("upper")) == 6, "the seventh waits in the buffer"
    runner.close()
    index = run.read_index("upper").to_pylist()
    assert [r["video_id"] for r in index] == [f"v{i}" for i in range(7)]
    assert [(r["generation"], r["seq"]) for r in index] == [(4, i + 1) for i in range(7)]
    assert len({r["shard"] for r in index}) == 3
    for shard in {r["shard"] for r in index}:  # each shard holds exactly the videos its index rows name
        names = storage.read_table(storage.join(run.stage_dir("upper"), shard)).column("video_id").to_pylist()
        assert names == [r["video_id"] for r in index if r["shard"] == shard]


def test_an_idle_worker_flushes_after_flush_s(tmp_path: Path) -> None:
    runner = StageRunner(replace(task(Upper(), tmp_path), flush_rows=100, flush_s=0.2))
    runner(items("a", "b"))
    run = RunDir(str(tmp_path))
    deadline = time.monotonic() + 30
    while not storage.list_files(run.index_dir("upper")):
        assert time.monotonic() < deadline, "the timer never flushed the idle worker's buffer"
        time.sleep(0.05)
    assert sorted(run.read_index("upper").column("video_id").to_pylist()) == ["a", "b"]
    runner.close()
    assert len(storage.list_files(run.index_dir("upper"))) == 1, "nothing left to flush at close"


@dataclass
class Batches(Stage):
    """Records the video ids of each batch it gets."""

    name = "batches"
    outputs = ("caption",)
    seen: list[list[str]] | None = None

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        assert self.seen is not None
        self.seen.append([it.video_id for it in batch])
        for it in batch:
            it.caption = it.video_id
        return batch


def test_the_local_executor_holds_one_chunk_of_videos_at_a_time(tmp_path: Path) -> None:
    seen: list[list[str]] = []
    stage = Batches(seen=seen)
    tasks = [replace(task(stage, tmp_path), batch_size=10)]
    refs = [WorkRef(v, f"/data/{v}.mp4") for v in "abcde"]
    rows = list(LocalExecutor(show_progress=False, chunk=2).run(tasks, refs))
    assert [(r["video_id"], r["status"]) for r in rows] == [(v, "ok") for v in "abcde"]
    assert seen == [["a", "b"], ["c", "d"], ["e"]], "a batch never spans two chunks"
    assert sorted(RunDir(str(tmp_path)).latest("batches", "f1")) == list("abcde")
