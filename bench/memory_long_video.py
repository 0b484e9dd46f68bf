"""Peak memory of tracking a long video vs a short one (goal: ratio <= 1.2, i.e. flat in length).

Builds a 30-second and a 10-minute clip by looping the bundled sample (downscaled to 320x180), samples
both at the same fps, and tracks them each in its own process so its peak RSS is its own: `--stage track`
with the tiny Sam2Video (two fixed boxes on every keyframe, matched to the same two tracks throughout), or
`--stage segment` with the tiny SAM 3 finding and tracking "rabbit" and "tree" window by window.

    .venv/bin/python bench/memory_long_video.py [--stage track|segment] [--short 30 --long 600 --fps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

from annotator import paths, video

SIZE = (320, 180)


def make_clip(out: Path, seconds: float) -> Path:
    src = paths.SAMPLES_DIR / "bigbuckbunny.mp4"
    meta = video.probe(src)
    source = video.read_frames(src, list(range(meta.num_frames)))
    frames = [cv2.resize(f, SIZE, interpolation=cv2.INTER_AREA) for f in source]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), meta.fps, SIZE)
    for i in range(round(seconds * meta.fps)):
        writer.write(cv2.cvtColor(frames[i % len(frames)], cv2.COLOR_RGB2BGR))
    writer.release()
    return out


def child_segment(clip: str, fps: float, window: int) -> None:
    """SAM 3 over one clip; print JSON with peak RSS (MB), frames and seconds."""
    from annotator.models import refs
    from annotator.records import Phrase, VideoInfo, VideoItem
    from annotator.stages.segment import SegmentStage, segment_item

    meta = video.probe(clip)
    indices = video.sample_indices(meta.num_frames, meta.fps, fps)
    info = VideoInfo(width=meta.width, height=meta.height, fps=meta.fps, num_frames=meta.num_frames,
                     frame_indices=indices, keyframes=[0])
    item = VideoItem("clip", clip, info=info, phrases=[Phrase("rabbit", 0, 6, "rabbit"), Phrase("tree", 7, 11, "tree")])
    stage = SegmentStage(model=refs.resolve("tiny:sam3_video"), window=window, score_threshold=0.0)
    stage.setup()
    started = time.perf_counter()
    with video.FrameReader(clip) as reader:
        tracks = segment_item(stage._segmenter.window, stage, item, lambda p: reader.read([indices[i] for i in p]))
    print(json.dumps({
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sampled_frames": len(indices), "tracks": len(tracks), "seconds": round(time.perf_counter() - started, 1),
    }))


def child(clip: str, fps: float, window: int) -> None:
    """Track one clip; print JSON with peak RSS (MB), frames and seconds."""
    from annotator.models import refs
    from annotator.models.sam2_video import Sam2VideoTracker
    from annotator.records import Detection, VideoInfo, VideoItem
    from annotator.stages.track import track_item
    from annotator.tracking.online import TrackingParams

    meta = video.probe(clip)
    indices = video.sample_indices(meta.num_frames, meta.fps, fps)
    keyframes = video.keyframe_positions(len(indices), 4)
    boxes = [[20.0, 20.0, 140.0, 120.0], [170.0, 60.0, 300.0, 170.0]]
    detections = [Detection(frame=k, phrase=p, box=boxes[p], score=1.0) for k in keyframes for p in (0, 1)]
    info = VideoInfo(width=meta.width, height=meta.height, fps=meta.fps, num_frames=meta.num_frames,
                     frame_indices=indices, keyframes=keyframes)
    item = VideoItem("clip", clip, info=info, detections=detections)
    params = TrackingParams(window=window, iou_threshold=0.0, score_threshold=0.0, min_area=0, max_lost_frames=8)
    tracker = Sam2VideoTracker(refs.resolve("tiny:sam2_video"))
    started = time.perf_counter()
    tracks = track_item(tracker, params, item)
    print(json.dumps({
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "sampled_frames": len(indices), "tracks": len(tracks), "seconds": round(time.perf_counter() - started, 1),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=float, default=30.0, help="seconds")
    parser.add_argument("--long", type=float, default=600.0, help="seconds")
    parser.add_argument("--fps", type=float, default=2.0, help="sampling fps for both")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--stage", choices=["track", "segment"], default="track")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (child_segment if args.stage == "segment" else child)(args.child, args.fps, args.window)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ANNOTATOR_CACHE": os.environ.get("ANNOTATOR_CACHE", str(Path(tmp) / "cache"))}
        for name, seconds in (("short", args.short), ("long", args.long)):
            clip = make_clip(Path(tmp) / f"{name}.mp4", seconds)
            out = subprocess.run([sys.executable, __file__, "--child", str(clip), "--fps", str(args.fps),
                                  "--window", str(args.window), "--stage", args.stage], env=env, capture_output=True,
                                 text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:<5} {seconds:>6.0f}s video: {results[name]}")
    ratio = results["long"]["peak_rss_mb"] / results["short"]["peak_rss_mb"]
    print(f"peak RSS long/short = {ratio:.3f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
