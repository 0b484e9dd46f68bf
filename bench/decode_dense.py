"""Dense decoding: every frame of a 30 s 720p clip through our reader (what ingest uses) vs bare sequential
PyAV decoding. Also prints the whole ingest stage (decode + frame store JPEGs) for reference.

    .venv/bin/python bench/decode_dense.py
"""

from __future__ import annotations

import tempfile
import time

import av
from clips import clip

from annotator import video
from annotator.records import VideoItem
from annotator.stages.ingest import IngestStage


def bare(path: str) -> int:
    n = 0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def ours(path: str, count: int) -> int:
    n = 0
    with video.FrameReader(path) as reader:
        for part, _frames in reader.chunks(list(range(count))):
            n += len(part)
    return n


def main() -> None:
    path = str(clip(30))
    started = time.perf_counter()
    count = bare(path)
    t_bare = time.perf_counter() - started
    started = time.perf_counter()
    assert ours(path, count) == count
    t_ours = time.perf_counter() - started
    stage = IngestStage(target_fps=None, max_frames=None)
    with tempfile.TemporaryDirectory() as root:
        stage.bind(root)
        started = time.perf_counter()
        (item,) = stage.process([VideoItem("thirty_seconds", path)])
        t_ingest = time.perf_counter() - started
    assert item.error is None, item.error
    print(f"{count} frames 720p: bare {count / t_bare:.0f} fps, ours {count / t_ours:.0f} fps; "
          f"whole ingest with the frame store {count / t_ingest:.0f} fps")
    print(f"ratio = {t_bare / t_ours:.3f}")


if __name__ == "__main__":
    main()
