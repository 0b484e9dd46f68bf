"""Driver memory is flat in the number of videos: peak RSS of the driver process for 200 vs 2,000 fake videos
whose items carry realistic masks (64 frames x 3 objects at 320x180), run through the Ray executor.

Each size runs in a fresh driver process (so peaks do not mix); the workers' memory is not the driver's.

    .venv/bin/python bench/driver_memory.py [--small 200] [--large 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile


def child(videos: int) -> None:
    import ray

    from annotator.executors.ray import RayExecutor
    from annotator.executors.runner import ExportSpec, StageTask, WorkRef
    from annotator.testing.fake_stages import fake_stages

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as root:
        stages = fake_stages(caption_s=0.0, detect_s=0.0, track_s=0.0, frames=64, keyframe_every=8)
        export = ExportSpec("bench", "run", {s.name: "fp" for s in stages})
        tasks = [StageTask(s, f"fp-{s.name}", root, concurrency=2 if s.name == "track" else 1, batch_size=16,
                           cpus=0.1, gpus=0.0, export=export if i == len(stages) - 1 else None)
                 for i, s in enumerate(stages)]
        refs = [WorkRef(f"v{i:06d}", f"/fake/v{i:06d}.mp4") for i in range(videos)]
        statuses = [row["status"] for row in RayExecutor(show_progress=False).run(tasks, refs)]
        del refs
    assert statuses.count("ok") == videos
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"videos": videos, "peak_mib": peak_kib / 1024}))
    ray.shutdown()


def measure(videos: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", str(videos)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    small, large = measure(args.small), measure(args.large)
    print(f"driver peak RSS: {args.small} videos {small:.0f} MiB, {args.large} videos {large:.0f} MiB")
    print(f"ratio = {large / small:.3f}")


if __name__ == "__main__":
    main()
