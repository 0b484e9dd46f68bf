"""Autoscaled pools against the best hand-tuned sizes, on 4 logical GPUs (DESIGN §4, §10).

The calibrated fake flow of `pipeline_overhead.py`: caption 2 s per video on 1 GPU, detect 120 ms per keyframe on
0.25 GPU, track 25 ms x (1 + 0.3 x objects) per frame on 0.5 GPU (16 frames, 4 keyframes, 3 objects), real link
and assemble, real checkpoints and export parts; `ray.init(num_cpus=2, num_gpus=4)`.

    ideal = GPU work / GPUs + fill, GPU work = videos x (2 x 1 + 0.48 x 0.25 + 0.76 x 0.5) GPU-s
    E     = ideal / actual wall

Hand-tuned: the best whole-actor sizes by arithmetic (caption 3, detect 1, track 1: 3.75 GPUs; 4 caption actors
leave no GPU for the rest), which run at the track pool's 1.32 videos/s against the ideal 1.6. Auto: every stage
`concurrency: auto`, re-planned every `--interval` seconds.

    .venv/bin/python bench/autoscale.py [--videos 40] [--scale 1.0] [--interval 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from annotator.executors.ray import RayExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.testing.fake_stages import fake_stages

FRAMES, KEYFRAMES_EVERY, OBJECTS, GPUS = 16, 4, 3, 4
SHARES = {"caption": 1.0, "detect": 0.25, "track": 0.5}
HAND = {"caption": 3, "detect": 1, "track": 1}


def costs(scale: float) -> dict[str, float]:
    """Seconds per video on one actor."""
    return {"caption": 2.0 * scale, "detect": 0.12 * FRAMES / KEYFRAMES_EVERY * scale,
            "track": 0.025 * FRAMES * (1 + 0.3 * OBJECTS) * scale}


def tasks(root: str, scale: float, auto: bool) -> list[StageTask]:
    stages = fake_stages(2.0 * scale, 0.12 * scale, 0.025 * scale, FRAMES, KEYFRAMES_EVERY)
    export = ExportSpec("bench", "run", {s.name: "fp" for s in stages})
    return [StageTask(stage, f"fp-{stage.name}", root, concurrency=1 if auto else HAND.get(stage.name, 1),
                      batch_size=1, cpus=0.1, gpus=SHARES.get(stage.name, 0.0),
                      export=export if i == len(stages) - 1 else None, scale=(1, None) if auto else None)
            for i, stage in enumerate(stages)]


def run(executor: RayExecutor, videos: int, scale: float, auto: bool) -> float:
    with tempfile.TemporaryDirectory() as root:
        refs = [WorkRef(f"v{i:04d}", f"/fake/v{i:04d}.mp4") for i in range(videos)]
        started = time.perf_counter()
        rows = list(executor.run(tasks(root, scale, auto), refs))
        wall = time.perf_counter() - started
    assert len(rows) == videos and all(r["status"] == "ok" for r in rows), rows[:3]
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every model cost")
    parser.add_argument("--interval", type=float, default=2.0, help="autoscale_interval_s")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians are printed")
    args = parser.parse_args()
    import ray

    cost = costs(args.scale)
    gpu_work = args.videos * sum(cost[s] * SHARES[s] for s in SHARES)
    fill = cost["detect"] + cost["track"]
    ideal = gpu_work / GPUS + fill
    executor = RayExecutor(num_cpus=2, num_gpus=GPUS, show_progress=False, autoscale_interval_s=args.interval)
    walls: dict[str, list[float]] = {"hand-tuned": [], "auto": []}
    try:
        with tempfile.TemporaryDirectory() as warm:  # worker processes start once, not per run
            list(executor.run(tasks(warm, 0.01, False), [WorkRef(f"w{i}", "/fake/w.mp4") for i in range(4)]))
        for _ in range(args.repeat):
            walls["hand-tuned"].append(run(executor, args.videos, args.scale, auto=False))
            walls["auto"].append(run(executor, args.videos, args.scale, auto=True))
    finally:
        ray.shutdown()
    print(f"{args.videos} videos on {GPUS} GPUs: ideal {ideal:.2f} s (GPU work {gpu_work:.1f} GPU-s + fill "
          f"{fill:.2f} s); steady-state bound of whole actors: 0.82")
    e = {}
    for name, values in walls.items():
        wall = statistics.median(values)
        e[name] = ideal / wall
        print(f"{name}: wall {wall:.2f} s (runs: {', '.join(f'{v:.2f}' for v in values)}), E = {e[name]:.3f}")
    print(f"auto / hand-tuned = {e['auto'] / e['hand-tuned']:.3f}")
    print(f"E = {e['auto']:.3f}")


if __name__ == "__main__":
    main()
