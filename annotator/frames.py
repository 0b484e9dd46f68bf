"""The frame store: sampled frames decoded once by ingest, kept as JPEG in the run directory, read by later stages.

`frames/<video_id>/<source frame index:06d>.jpg`. Caption sends the JPEG bytes to the VLM as they are;
detect, track, review and the VideoGLaMM export decode them. Items without stored frames (a stage tested on
its own, or a run whose frame store was dropped after export) decode the source video instead.
"""

from __future__ import annotations

import cv2
import numpy as np

from annotator import storage, video
from annotator.records import VideoItem


def frame_file(index: int) -> str:
    return f"{index:06d}.jpg"


def frame_path(run_root: str, video_id: str, index: int) -> str:
    return storage.join(run_root, "frames", video_id, frame_file(index))


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise video.VideoError("stored frame is not a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resize_max_side(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return frame
    scale = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def write(run_root: str, video_id: str, indices: list[int], frames: np.ndarray, quality: int) -> None:
    for index, frame in zip(indices, frames, strict=True):
        storage.write_bytes(frame_path(run_root, video_id, index), encode_jpeg(frame, quality))


def read_jpegs(run_root: str, video_id: str, indices: list[int]) -> list[bytes]:
    """Stored JPEG bytes of source frames; one concurrent fetch on object stores."""
    paths = [frame_path(run_root, video_id, i) for i in indices]
    fs, _ = storage.filesystem(paths[0])
    stripped = [storage.filesystem(p)[1] for p in paths]
    got = fs.cat(stripped, on_error="raise")
    if isinstance(got, bytes):
        got = {stripped[0]: got}
    return [got[p] for p in stripped]


def stored(item: VideoItem, run_root: str | None) -> bool:
    return bool(run_root and item.info is not None and item.info.stored_frames)


def read(item: VideoItem, positions: list[int], run_root: str | None) -> np.ndarray:
    """RGB frames `(T, H, W, 3)` at sampled-frame positions: from the frame store when there is one."""
    assert item.info is not None, "ingest has not run"
    indices = [item.info.frame_indices[p] for p in positions]
    if stored(item, run_root):
        assert run_root is not None
        try:
            return np.stack([decode_jpeg(b) for b in read_jpegs(run_root, item.video_id, indices)])
        except FileNotFoundError:
            pass  # frame store dropped after an export: decode the source
    frames = video.read_frames(item.path, indices)
    if frames.shape[1:3] != (item.info.height, item.info.width):  # ingest stored them smaller
        frames = np.stack([cv2.resize(f, (item.info.width, item.info.height), interpolation=cv2.INTER_AREA)
                           for f in frames])
    return frames
