"""Synthetic benchmark clips (720p H.264, 25 fps, x264's default GOP), encoded once and cached."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from annotator import paths


def clip(seconds: int, width: int = 1280, height: int = 720, fps: int = 25) -> Path:
    """A moving colour gradient with a drifting square: cheap to make, real to decode."""
    out = paths.cache_dir() / "bench" / f"clip_{seconds}s_{width}x{height}.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.mp4")
    y, x = np.mgrid[:height, :width]
    base = np.stack([(x * 255 // width), (y * 255 // height), np.full_like(x, 128)], axis=-1).astype(np.uint8)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(seconds * fps):
            frame = np.roll(base, i * 3, axis=1)
            s = (i * 7) % (width - 100)
            frame[300:400, s : s + 100] = (255, (i * 5) % 256, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(out)
    return out
