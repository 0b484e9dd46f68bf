"""Checkpoint bytes / export bytes for the same run: every stage shard and index under `stages/` against the
Parquet export parts. The frame store (`frames/`) is reported apart: it is the decoded input, not a checkpoint.

Two runs: the raw-video flow with calibrated fakes (64 frames, 3 objects, one track each, as SAM2 gives on
real videos; real link, assemble, checkpoints and export), and with `--demo` also `pipelines/demo.yaml`, whose
random-weight tracker starts a new track at every keyframe (3 tracks per object), so its union masks are
derived from more track masks than a real run keeps.

    .venv/bin/python bench/checkpoint_bytes.py [--videos 20] [--demo]
"""

from __future__ import annotations

import argparse
import tempfile

from annotator import paths, storage
from annotator.executors.local import LocalExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.testing.fake_stages import fake_stages


def ratio(root: str) -> tuple[int, int, int]:
    return (storage.du(storage.join(root, "stages")), storage.du(storage.join(root, "export", "parquet")),
            storage.du(storage.join(root, "frames")))


def fake_run(root: str, videos: int) -> None:
    stages = fake_stages(caption_s=0.0, detect_s=0.0, track_s=0.0, frames=64, keyframe_every=8, width=1280,
                         height=720)
    export = ExportSpec("bench", "run", {s.name: "fp" for s in stages})
    tasks = [StageTask(s, f"fp-{s.name}", root, 1, 8, 1.0, 0.0, export=export if i == len(stages) - 1 else None)
             for i, s in enumerate(stages)]
    rows = list(LocalExecutor(show_progress=False).run(tasks, [WorkRef(f"v{i:04d}", "/fake.mp4")
                                                               for i in range(videos)]))
    assert all(r["status"] == "ok" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--demo", action="store_true", help="also measure the tiny random-weight demo run")
    args = parser.parse_args()
    if args.demo:
        from annotator.config import load_config
        from annotator.pipeline import Pipeline

        with tempfile.TemporaryDirectory() as root:
            demo = paths.PIPELINES_DIR / "demo.yaml"
            Pipeline(load_config(demo), str(demo)).run([str(paths.SAMPLES_DIR)], root, executor="local",
                                                       show_progress=False)
            ckpt, export, frames = ratio(root)
            print(f"demo (random weights, 3 tracks per object): checkpoints {ckpt / 1e6:.2f} MB, export "
                  f"{export / 1e6:.2f} MB, frame store {frames / 1e6:.2f} MB, ratio {ckpt / export:.3f}")
    with tempfile.TemporaryDirectory() as root:
        fake_run(root, args.videos)
        ckpt, export, frames = ratio(root)
    print(f"{args.videos} videos x 64 frames x 3 objects at 720p: checkpoints {ckpt / 1e6:.2f} MB, export "
          f"{export / 1e6:.2f} MB")
    print(f"ratio = {ckpt / export:.3f}")


if __name__ == "__main__":
    main()
