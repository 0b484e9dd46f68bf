"""Sparse decoding: our ingest of 12 frames from a 10-minute 720p clip (probe, seek-decode, frame store JPEGs)
vs a bare PyAV seek loop decoding the same 12 frames.

    .venv/bin/python bench/decode_sparse.py
"""

from __future__ import annotations

import tempfile
import time

import av
from clips import clip

from annotator.records import VideoItem
from annotator.stages.ingest import IngestStage


def bare_seek(path: str, indices: list[int]) -> int:
    """The textbook loop: seek to the keyframe before each target, decode up to it."""
    got = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps, tb = float(stream.average_rate), float(stream.time_base)
        for index in indices:
            container.seek(int(index / fps / tb), stream=stream, backward=True)
            for frame in container.decode(stream):
                if round(frame.pts * tb * fps) >= index:
                    frame.to_ndarray(format="rgb24")
                    got += 1
                    break
    return got


def main() -> None:
    path = str(clip(600))
    stage = IngestStage(target_fps=None, max_frames=12, keyframe_every=4)
    with tempfile.TemporaryDirectory() as root:
        stage.bind(root)
        started = time.perf_counter()
        (item,) = stage.process([VideoItem("ten_minutes", path)])
        ours = time.perf_counter() - started
    assert item.error is None and item.info is not None, item.error
    indices = item.info.frame_indices
    started = time.perf_counter()
    assert bare_seek(path, indices) == 12
    bare = time.perf_counter() - started
    print(f"12 of {item.info.num_frames} frames (10 min, 720p): ours {ours:.2f}s (incl. probe and 12 JPEGs into the "
          f"frame store), bare PyAV seek loop {bare:.2f}s")
    print(f"ratio = {ours / bare:.3f}")


if __name__ == "__main__":
    main()
