"""Streaming efficiency of the Ray executor with calibrated fake models (DESIGN §10).

Costs: caption 2 s per video on 1 GPU, detect 120 ms per keyframe on 0.25 GPU, track 25 ms x (1 + 0.3 x objects)
per frame on 0.5 GPU; 16 sampled frames, 4 keyframes, 3 objects; real link and assemble, real checkpoints and
export parts. `ray.init(num_cpus=2, num_gpus=G)` with logical GPUs; caption gets one actor per GPU.

    E    = ideal wall / actual wall, ideal = caption work / caption actors + one video's time through the rest
    E(2) = throughput with 2 GPUs / (2 x throughput with 1 GPU)

    .venv/bin/python bench/pipeline_overhead.py [--videos 40] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from annotator.executors.ray import RayExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.testing.fake_stages import fake_stages

FRAMES, KEYFRAMES_EVERY, OBJECTS = 16, 4, 3


def tasks(root: str, gpus: int, scale: float) -> list[StageTask]:
    caption_s, detect_s, track_s = 2.0 * scale, 0.12 * scale, 0.025 * scale
    stages = fake_stages(caption_s, detect_s, track_s, FRAMES, KEYFRAMES_EVERY)
    export = ExportSpec("bench", "run", {s.name: "fp" for s in stages})
    plan = {"caption": (gpus, 1.0), "detect": (1, 0.25), "track": (1, 0.5)}  # concurrency, GPUs per actor
    out = []
    for i, stage in enumerate(stages):
        concurrency, gpu = plan.get(stage.name, (1, 0.0))
        out.append(StageTask(stage, f"fp-{stage.name}", root, concurrency=concurrency, batch_size=1, cpus=0.1,
                             gpus=gpu, export=export if i == len(stages) - 1 else None))
    return out


def run(gpus: int, videos: int, scale: float) -> float:
    import ray

    executor = RayExecutor(num_cpus=2, num_gpus=gpus, show_progress=False)  # starts Ray as `annotator run` does
    try:
        with tempfile.TemporaryDirectory() as warm:  # worker processes start once, not per video
            list(executor.run(tasks(warm, gpus, 0.01), [WorkRef(f"w{i}", "/fake/w.mp4") for i in range(2 * gpus)]))
        with tempfile.TemporaryDirectory() as root:
            refs = [WorkRef(f"v{i:04d}", f"/fake/v{i:04d}.mp4") for i in range(videos)]
            started = time.perf_counter()
            rows = list(executor.run(tasks(root, gpus, scale), refs))
            wall = time.perf_counter() - started
        assert len(rows) == videos and all(r["status"] == "ok" for r in rows), rows[:3]
        return wall
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model cost (quick runs: 0.25)")
    args = parser.parse_args()
    caption = 2.0 * args.scale
    fill = (0.12 * FRAMES / KEYFRAMES_EVERY + 0.025 * FRAMES * (1 + 0.3 * OBJECTS)) * args.scale
    walls = {}
    for gpus in (1, 2):
        walls[gpus] = run(gpus, args.videos, args.scale)
        ideal = args.videos * caption / gpus + fill
        print(f"{gpus} GPU(s): {args.videos} videos, wall {walls[gpus]:.2f}s, ideal {ideal:.2f}s, "
              f"E = {ideal / walls[gpus]:.3f}")
    e1 = (args.videos * caption + fill) / walls[1]
    e2 = (args.videos * caption / 2 + fill) / walls[2]
    print(f"E(1 GPU) = {e1:.3f}  E(2 GPUs) = {e2:.3f}")
    print(f"E(2) = {walls[1] / (2 * walls[2]):.3f}")
    print(f"E = {min(e1, e2):.3f}")


if __name__ == "__main__":
    main()
