"""The autoscaler: its plan (pool sizes from measured rates and queues, within the cluster; no Ray needed), and
pools that grow, then drain to a smaller cluster, on Ray without losing or repeating work."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from annotator.executors.autoscale import PoolLoad, fits, packs, plan
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.rundir import RunDir
from annotator.testing.fake_stages import Gate, fake_stages
from tests.helpers import current_export

if TYPE_CHECKING:
    from annotator.executors.ray_stream import Pool, StreamScheduler

GPUS = {"CPU": 2.0, "GPU": 4.0}


def flow(caption: int = 100, detect: int = 0, track: int = 0, upstream: int = 0,
         bounds: dict[str, tuple[int, int | None]] | None = None) -> list[PoolLoad]:
    """The calibrated fake flow's GPU pools (per-actor rates of `bench/pipeline_overhead.py`), all on auto, with
    `caption` videos still to caption and `detect`/`track` queued in front of those pools."""
    def load(name: str, gpu: float, rate: float, queued: int, ahead: int, first: bool = False) -> PoolLoad:
        low, high = (bounds or {}).get(name, (1, None))
        return PoolLoad(name, {"CPU": 0.1, "GPU": gpu}, 1, low, high, rate, queued, ahead, first=first)

    return [load("caption", 1.0, 1 / 2.0, caption, upstream, first=True),
            load("detect", 0.25, 1 / 0.48, detect, caption + upstream),
            load("track", 0.5, 1 / 0.76, track, caption + detect + upstream)]


def test_steady_state_takes_the_best_whole_actor_sizes() -> None:
    # 3 caption (1.5 videos/s) + 1 detect + 1 track (1.32 videos/s): 3.75 GPUs; a 4th caption would leave no GPU
    assert plan(flow(), GPUS) == [3, 1, 1]


def test_a_stage_with_no_work_left_frees_its_gpus_for_the_backlog() -> None:
    # nothing left to caption: caption falls to its minimum; track's queue takes what caption held
    sizes = plan(flow(caption=0, detect=0, track=30), GPUS)
    assert sizes[0] == 1
    assert sizes[2] == 5  # 1 + 0.25 + 5 x 0.5 = 3.75 GPUs; a 6th track actor would need 4.25
    assert 1.0 * sizes[0] + 0.25 * sizes[1] + 0.5 * sizes[2] <= 4.0


def test_at_the_end_of_the_input_only_a_backlog_gets_more_actors() -> None:
    loads = flow(caption=1, detect=1, track=1)
    loads.append(PoolLoad("link", {"CPU": 0.1}, 1, 1, None, 50.0, 1, 3))  # fast, nothing queued beyond one actor
    assert plan(loads, GPUS) == [1, 1, 1, 1]  # nothing grows for three videos that one actor each can hold


def test_a_growing_queue_takes_gpus_from_upstream() -> None:
    calm, backed_up = plan(flow(track=2), GPUS), plan(flow(track=40), GPUS)
    assert calm == [3, 1, 1]
    assert backed_up[2] > calm[2] and backed_up[0] < calm[0], backed_up


def test_bounds_and_fixed_pools_hold() -> None:
    loads = flow(caption=100, track=40, bounds={"caption": (2, 2), "track": (1, 2)})
    sizes = plan(loads, GPUS)
    assert sizes[0] == 2 and sizes[2] == 2
    fixed = flow()
    fixed[0] = PoolLoad("caption", {"GPU": 1.0}, 2, 2, 2, 0.5, 50, 0, first=True)
    assert plan(fixed, GPUS)[0] == 2  # a fixed pool keeps its size, and what it holds is not planned again


def test_a_smaller_cluster_shrinks_the_pools_to_fit() -> None:
    sizes = plan(flow(track=10), {"CPU": 2.0, "GPU": 2.0})  # a node with 2 of the 4 GPUs was lost
    assert 1.0 * sizes[0] + 0.25 * sizes[1] + 0.5 * sizes[2] <= 2.0
    assert min(sizes) >= 1


def test_a_pool_with_no_finished_call_is_held_until_its_running_calls_bound_it() -> None:
    loads = flow(caption=100)
    for load in loads:
        load.rate = None
    assert plan(loads, GPUS) == [1, 1, 1]  # nothing to go on yet: no pool is guessed fast or slow
    loads[0].bound = 1 / 2.0  # caption's first call has run 2 s on one video: at most 0.5 videos/s
    assert plan(loads, GPUS) == [3, 1, 1]  # it grows into what detect and track (held) leave
    loads[0].size, loads[0].bound = 3, 20.0  # a call that just began looks fast: a bound never shrinks a pool
    assert plan(loads, GPUS) == [3, 1, 1]
    few = flow(caption=3)
    few[0].rate, few[0].bound = None, 0.1
    assert plan(few, GPUS)[0] == 2  # and never outgrows its work: 3 videos keep 2 actors busy
    lost = flow(caption=100, detect=20)
    for load in lost:
        load.rate = None
    lost[1].size = 8  # 2 GPUs of detect actors, no call finished, when the cluster falls to 2 GPUs
    sizes = plan(lost, {"CPU": 2.0, "GPU": 2.0})
    assert 1.0 * sizes[0] + 0.25 * sizes[1] + 0.5 * sizes[2] <= 2.0 and min(sizes) >= 1, sizes


def test_gpu_shares_never_pack_past_a_gpu() -> None:
    assert packs([0.6] * 4, 4) and not packs([0.6] * 5, 4)  # 3.0 GPUs of shares, but two never share a GPU
    assert packs([1.0, 0.5, 0.5, 0.25, 0.25, 0.5], 3) and not packs([1.0, 0.5, 0.5, 0.25, 0.25, 0.5, 0.25], 3)
    assert not packs([2.0, 1.0, 1.0], 3)
    loads = [PoolLoad("a", {"GPU": 0.6}, 1, 1, None, 1.0, 50, 0, first=True)]
    assert plan(loads, {"GPU": 4.0}) == [4]


VIDEOS, FIRST = 12, 4  # videos after the first 4 wait at a gate until the pools fit a smaller cluster


@pytest.mark.slow
def test_pools_grow_then_drain_to_a_smaller_cluster_and_lose_nothing(ray_cluster, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    from annotator.executors.local import LocalExecutor
    from annotator.executors.ray import RayExecutor, close_pools
    from annotator.executors.ray_stream import StreamScheduler

    root, release = tmp_path / "run", tmp_path / "release"
    refs = [WorkRef(f"v{i:02d}", f"/fake/v{i:02d}.mp4") for i in range(VIDEOS)]
    held = [f"v{i:02d}" for i in range(FIRST, VIDEOS)]
    plans: list[float] = []
    reports: list[dict[str, int]] = []
    applied: dict[str, int] = {}  # the sizes once the smaller cluster's first plan is applied, and reports then

    def capacity() -> dict[str, float]:
        """Scripted, not raced: plans see 2 GPUs until detect and track have grown past one actor each (their
        first calls bound or measure them), every later one 1 (as if a node went); once the first plan for 1 GPU
        is applied, the gate lets the held videos go on."""
        if plans and plans[-1] == 1.0 and not applied:
            applied.update({p.name: p.staying() for p in scheduler.pools}, reports=len(reports))
            release.touch()
        grown = sum(p.staying() for p in scheduler.pools if p.name in ("detect", "track")) > 2
        plans.append(1.0 if grown or (plans and plans[-1] == 1.0) else 2.0)
        return {"CPU": 2.0, "GPU": plans[-1]}

    tasks = _tasks(str(root), str(release), held)
    scheduler = StreamScheduler(RayExecutor().pools(tasks), refs, on_pools=reports.append,
                                autoscale_interval_s=0.2, capacity=capacity)
    try:
        with caplog.at_level(logging.INFO, logger="annotator.executors.ray_stream"):
            rows = list(scheduler.run())
    finally:
        close_pools(scheduler.pools)  # as the executor ends a stream: buffered checkpoints written, actors gone
    assert sorted(r["video_id"] for r in rows) == [r.video_id for r in refs]
    assert {r["status"] for r in rows} == {"ok"}, [r for r in rows if r["status"] != "ok"]
    # every pool starts at one actor; once their calls tell, detect and track grow into the 2 GPUs, never past them
    assert set(reports[0].values()) == {1}, reports
    before = reports[1:applied["reports"]]
    assert before and max(r["detect"] + r["track"] for r in before) > 2, reports
    assert all(0.5 * (r["detect"] + r["track"]) <= 2.0 for r in before), reports
    assert (applied["detect"], applied["track"]) == (1, 1), applied  # the next plan fits the smaller cluster
    assert all(0.5 * (r["detect"] + r["track"]) <= 1.0 for r in reports[applied["reports"]:]), reports
    assert "re-admitting" not in caplog.text, "a drained actor was killed with work in it"
    run = RunDir(str(root))
    for task in tasks:  # each stage ran each video once: a drained actor finished its calls first
        assert run.read_index(task.stage.name).num_rows == VIDEOS, task.stage.name

    undisturbed, open_gate = tmp_path / "undisturbed", tmp_path / "open"
    open_gate.touch()
    local = _tasks(str(undisturbed), str(open_gate), held)
    assert {r["status"] for r in LocalExecutor(show_progress=False).run(local, refs)} == {"ok"}
    for table, key in (("qa", ("video_id", "question", "answer", "object_ids")),
                       ("objects", ("video_id", "object_id", "frame_indices", "mask_rles"))):
        assert current_export(run, table, key) == current_export(RunDir(str(undisturbed)), table, key), table


def _tasks(root: str, release: str, held: list[str]) -> list[StageTask]:
    """The calibrated fake flow (fast) with a gate after ingest; the first pool, detect and track on auto (detect
    and track at half a GPU)."""
    stages = fake_stages(caption_s=0.02, detect_s=0.1, track_s=0.01, frames=8)
    stages.insert(1, Gate(release=release, hold=held, wait_s=120.0))
    export = ExportSpec("fake", "run1", {s.name: "fp" for s in stages})
    out = []
    for i, stage in enumerate(stages):
        gpus = 0.5 if stage.name in ("detect", "track") else 0.0
        out.append(StageTask(stage, f"fp-{stage.name}", root, concurrency=1, batch_size=1, cpus=0.1, gpus=gpus,
                             export=export if i == len(stages) - 1 else None,
                             scale=(1, None) if gpus or i == 0 else None))
    return out


def test_a_pool_shrinking_by_several_empties_whole_gpus() -> None:
    from annotator.executors.ray_stream import Pool, StreamScheduler

    # the layout after the tracker grew into a captioner's GPU: GPU 0 holds detect and the first track actor,
    # GPU 1 the two new ones; a whole-GPU captioner can come back only if track gives up GPU 1 entirely
    detect = Pool("detect", [], 1, demand={"GPU": 0.25})
    track = Pool("track", [], 1, demand={"GPU": 0.5})
    scheduler = StreamScheduler([detect, track], [])
    for pool, gpus in ((detect, ["0"]), (track, ["0", "1", "1"])):
        for gpu in gpus:
            actor = pool.add(object())  # never called: busy actors are drained, not retired, here
            pool.nodes[actor], pool.gpus[actor], pool.healthy[actor], pool.busy[actor] = "n", (gpu,), True, 1
    scheduler._drain_one(1)
    scheduler._drain_one(1)
    assert [track.gpus[a] for a in range(3) if track.draining[a]] == [("1",), ("1",)]
    assert track.staying() == 1 and track.gpus[track.live()[0]] == ("0",)


def test_a_pool_grows_by_at_most_four_actors_or_its_size_per_plan() -> None:
    # 32 actors of 0.25 GPU would fit, but starting them at once stalls a node's CPUs (a run here started 14
    # ingest actors on 2 cores on a guess from one slow first call): 1 -> 5 -> 10 -> 20 -> 32
    loads = [PoolLoad("detect", {"GPU": 0.25}, 1, 1, None, 1.0, 200, 0, first=True)]
    seen = []
    for _ in range(5):
        loads[0].size = plan(loads, {"GPU": 8.0})[0]
        seen.append(loads[0].size)
    assert seen == [5, 10, 20, 32, 32]
    loads[0].size, loads[0].lo = 1, 8
    assert plan(loads, {"GPU": 8.0}) == [8]  # a minimum is reached at once


def test_no_pool_grows_past_what_a_pool_with_little_work_left_can_pass_on() -> None:
    # the end of a bench run, as its plan log showed it: track clears its last 9 videos; link, 200 times as fast
    # per actor, was grown to 2, then 3 actors, whose start took the CPUs the last calls needed
    def load(name: str, demand: dict[str, float], size: int, rate: float, queued: int, ahead: int) -> PoolLoad:
        return PoolLoad(name, {"CPU": 0.1, **demand}, size, 1, None, rate, queued, ahead, first=name == "ingest")

    loads = [load("ingest", {}, 1, 366.0, 0, 0), load("caption", {"GPU": 1.0}, 2, 0.5, 1, 0),
             load("phrases", {}, 1, 305.0, 0, 1), load("detect", {"GPU": 0.25}, 2, 2.07, 1, 1),
             load("track", {"GPU": 0.5}, 3, 1.3, 7, 2), load("link", {}, 1, 306.0, 0, 9)]
    sizes = plan(loads, GPUS)
    assert sizes == [1, 1, 1, 1, 4, 1]  # caption's GPUs go to track: 4 actors hold its 7 videos; link stays


def test_a_pool_before_one_nothing_is_known_of_grows_only_for_its_own_queue() -> None:
    # the start of a bench run: ingest measured fast with an empty queue, the captioner after it not started yet;
    # the plan's stream rate had nothing to bound it, and ingest grew by the most it could
    def load(name: str, demand: dict[str, float], rate: float | None, queued: int, ahead: int) -> PoolLoad:
        return PoolLoad(name, {"CPU": 0.1, **demand}, 1, 1, None, rate, queued, ahead, first=name == "ingest")

    loads = [load("ingest", {}, 41.0, 0, 27), load("caption", {"GPU": 1.0}, None, 13, 27),
             load("detect", {"GPU": 0.25}, None, 0, 40), load("track", {"GPU": 0.5}, None, 0, 40)]
    assert plan(loads, GPUS) == [1, 1, 1, 1]
    loads[0].queued = 12  # a queue of its own: it grows for that
    assert plan(loads, GPUS)[0] > 1


def test_backlogs_larger_than_the_cluster_share_what_it_holds() -> None:
    # 1000 videos queued for a captioner batching 64 on 8 GPUs: clearing every backlog within the horizon needs
    # 67 caption actors; the plan returned that unplaceable floor (actors that could never start) instead of
    # draining what fits
    loads = [PoolLoad("ingest", {"CPU": 1}, 4, 1, None, 40.0, 100, 10**6, first=True),
             PoolLoad("caption", {"CPU": 1, "GPU": 1.0}, 4, 1, None, 0.5, 1000, 10**6),
             PoolLoad("detect", {"CPU": 1, "GPU": 0.25}, 1, 1, None, 2.0, 100, 10**6),
             PoolLoad("track", {"CPU": 1, "GPU": 0.5}, 2, 1, None, 1.3, 100, 10**6)]
    capacity = {"CPU": 64.0, "GPU": 8.0}
    sizes = plan(loads, capacity)
    assert fits(loads, sizes, capacity), sizes
    assert sizes[1] >= 6 and sizes[2] >= 1 and sizes[3] >= 1, sizes  # the captioner's backlog takes the most


def _scripted(interval_s: float) -> tuple[list[float], Pool, StreamScheduler]:
    """A scheduler over one autoscaled pool of one actor that is up (never called: the plan keeps its size), on a
    clock the test moves."""
    from annotator.executors.ray_stream import Pool, StreamScheduler

    now = [0.0]
    pool = Pool("caption", [], 2, demand={"GPU": 1.0}, scale=(1, 1))
    scheduler = StreamScheduler([pool], [], clock=lambda: now[0], autoscale_interval_s=interval_s,
                                capacity=lambda: {"GPU": 1.0})
    actor = pool.add(object())
    pool.healthy[actor], pool.progress[actor] = True, 0.0
    return now, pool, scheduler


def test_plans_come_four_times_an_interval_until_every_pool_is_measured() -> None:
    now, pool, scheduler = _scripted(interval_s=8.0)
    planned = []
    for tick in range(53):
        now[0] = tick * 0.5
        if tick == 20:  # the pool's first call ends at 10 s: it is measured from then on
            pool.work_s, pool.work_videos = 4.0, 2.0
        if scheduler._plan_if_due():
            planned.append(now[0])
    assert planned == [2.0, 4.0, 6.0, 8.0, 10.0, 18.0, 26.0]  # every 8 s once measured
    assert scheduler.plans == 7 and pool.staying() == 1


def test_a_running_call_bounds_its_pool_only_once_it_has_run_a_quarter_interval() -> None:
    from annotator.executors.ray_stream import _Call

    now, pool, scheduler = _scripted(interval_s=8.0)
    scheduler.calls["receipt"] = _Call(0, 0, [("v1", None), ("v2", None)], [None, None])
    now[0] = 1.9  # a first call 1.9 s old may still be importing: it bounds nothing yet
    assert scheduler._rate_bound(0) is None
    now[0] = 2.0
    assert scheduler._rate_bound(0) == pytest.approx(1.0)  # 2 videos in no less than 2 s
    now[0] = 5.0
    assert scheduler._rate_bound(0) == pytest.approx(0.4)
    pool.progress[0] = None  # restarting: its call's time is not known
    assert scheduler._rate_bound(0) is None


def test_model_loading_is_not_counted_as_a_pools_throughput(ray_cluster, tmp_path: Path) -> None:
    from dataclasses import dataclass

    from annotator.executors.ray import _StageActor
    from annotator.executors.ray_stream import _Call
    from annotator.executors.runner import STATUS_KEYS
    from annotator.records import VideoItem
    from annotator.stage import PerItemStage

    @dataclass
    class SlowLoad(PerItemStage):
        name = "slow-load"
        outputs = ("caption",)

        def setup(self) -> None:
            time.sleep(0.3)  # the model's load: at least this long

        def process_item(self, item: VideoItem) -> VideoItem:
            item.caption = "x"
            return item

    # the actor reports the seconds its call spent loading models: the first call's load, then none
    actor = _StageActor([StageTask(SlowLoad(), "fp", str(tmp_path), concurrency=1, batch_size=2, cpus=0.1,
                                  gpus=0.0)],
                        {"slow-load": ("caption",)}, last=True)
    first = actor.run(WorkRef("v1", "/fake/v1.mp4"))
    again = actor.run(WorkRef("v2", "/fake/v2.mp4"))
    actor.flush()
    assert [r["status"] for r in first["rows"] + again["rows"]] == ["ok", "ok"]
    assert first["setup_s"] >= 0.3 and again["setup_s"] == 0.0

    # and the loop takes it out of the pool's time: 1 video in the 2 s after a 20 s load, on a scripted clock
    now, pool, scheduler = _scripted(interval_s=8.0)
    pool.busy[0] = 1
    row = {**dict.fromkeys(STATUS_KEYS, ""), "video_id": "v1", "status": "ok"}
    now[0] = 22.0
    list(scheduler._finish(ray_cluster.put({"node": "n", "rows": [row], "setup_s": 20.0}),
                           _Call(0, 0, [("v1", None)], [])))
    assert pool.rate() == pytest.approx(0.5)  # not 1 / 22
