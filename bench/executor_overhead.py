"""Executor overhead with calibrated fake models: pipeline wall time / pure model time.

Each fake stage sleeps a known cost per item, so Σ model time is exact. Prints, per executor,
R = workers x wall / Σ model time (1.0 = no overhead; the goal for real runs is close to 1).

    .venv/bin/python bench/executor_overhead.py --videos 16 --cost 0.05
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

from annotator.executors import make_executor
from annotator.executors.runner import StageTask
from annotator.records import VideoItem
from annotator.stage import PerItemStage


@dataclass
class SleepStage(PerItemStage):
    """A model stand-in whose cost per item is known exactly."""

    name = "sleep"
    cost_s: float = 0.05
    label: str = "a"

    def process_item(self, item: VideoItem) -> VideoItem:
        time.sleep(self.cost_s)
        item.caption = (item.caption or "") + self.label
        return item


def tasks(root: str, stages: int, cost: float, workers: int) -> list[StageTask]:
    out = []
    for i in range(stages):
        stage = SleepStage(cost_s=cost, label=str(i))
        stage.name = f"sleep{i}"  # type: ignore[misc] - distinct checkpoint folders per stage
        out.append(StageTask(stage, f"fp{i}", root, concurrency=workers, batch_size=1, cpus=0.2, gpus=0.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--cost", type=float, default=0.05, help="seconds per item per stage")
    parser.add_argument("--ray-workers", type=int, default=2, help="actors per stage on Ray")
    args = parser.parse_args()
    model_time = args.videos * args.stages * args.cost
    for kind, workers in (("local", 1), ("ray", args.ray_workers)):
        executor = make_executor(kind, num_cpus=2, show_progress=False)
        with tempfile.TemporaryDirectory() as warm:  # cluster start-up is not per-video overhead
            executor.run(tasks(warm, 1, 0.0, 1), [VideoItem(video_id="warm", path="/fake/warm.mp4")])
        with tempfile.TemporaryDirectory() as root:
            items = [VideoItem(video_id=f"v{i:04d}", path=f"/fake/{i}.mp4") for i in range(args.videos)]
            started = time.perf_counter()
            done = executor.run(tasks(root, args.stages, args.cost, workers), items)
            wall = time.perf_counter() - started
            assert all(it.error is None for it in done), [it.error for it in done if it.error]
            ratio = workers * wall / model_time
            print(f"{kind:<5} workers/stage={workers} wall={wall:6.2f}s model={model_time:6.2f}s R={ratio:5.2f}")


if __name__ == "__main__":
    main()
