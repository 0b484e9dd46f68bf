"""Decode and sample videos (files via OpenCV, or folders of frame images).

Frames are returned RGB uint8 `(T, H, W, 3)`. Decoding reads only the frames asked for, in one
sequential pass, so stages never hold a whole video in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"}
FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message says why."""


@dataclass(frozen=True)
class VideoMeta:
    width: int
    height: int
    fps: float
    num_frames: int


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir())


def _frame_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def probe(path: str | Path, folder_fps: float = 25.0) -> VideoMeta:
    """Size, fps and frame count; raises VideoError if the first frame cannot be decoded."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        files = _frame_files(path)
        if not files:
            raise VideoError(f"{path}: folder holds no .jpg/.png frames")
        first = _read_image(files[0])
        return VideoMeta(first.shape[1], first.shape[0], folder_fps, len(files))
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: cannot open as a video (unsupported or corrupt container)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: no decodable frame (corrupt or empty video stream)")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or folder_fps
        if count <= 0:
            raise VideoError(f"{path}: container reports no frames")
        return VideoMeta(frame.shape[1], frame.shape[0], fps, count)
    finally:
        cap.release()


def sample_indices(
    num_frames: int, fps: float, target_fps: float | None = None, max_frames: int | None = None
) -> list[int]:
    """Source-frame indices sampled at `target_fps` (all frames if None), then thinned evenly to `max_frames`."""
    if num_frames <= 0:
        return []
    if target_fps and target_fps < fps:
        step = fps / target_fps
        indices = sorted({min(num_frames - 1, round(i * step)) for i in range(math.ceil(num_frames / step))})
    else:
        indices = list(range(num_frames))
    if max_frames and len(indices) > max_frames:
        picks = np.linspace(0, len(indices) - 1, max_frames).round().astype(int)
        indices = [indices[i] for i in picks]
    return indices


def keyframe_positions(num_sampled: int, every: int) -> list[int]:
    """Every `every`-th sampled frame, starting at the first."""
    if every < 1:
        raise ValueError("keyframe_every must be >= 1")
    return list(range(0, num_sampled, every))


def frame_differences(path: str | Path, indices: list[int], size: tuple[int, int] = (64, 36),
                      chunk: int = 16) -> np.ndarray:
    """Mean absolute difference (0..1) between consecutive sampled frames, on small grey thumbnails.

    Decoded a chunk at a time, so a long video never sits in memory; element i compares frame i with i+1.
    """
    thumbs = []
    with FrameReader(path) as reader:
        for start in range(0, len(indices), chunk):
            for frame in reader.read(indices[start : start + chunk]):
                grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                thumbs.append(cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
    stack = np.stack(thumbs)
    return np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))


def scene_cut_positions(path: str | Path, indices: list[int], threshold: float) -> list[int]:
    """Sampled positions that start a new shot: the picture changes by more than `threshold` from the last one."""
    if len(indices) < 2:
        return []
    return [i + 1 for i, d in enumerate(frame_differences(path, indices)) if d > threshold]


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError(f"{path}: cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """Decode the given source-frame indices (any order, duplicates allowed) as RGB (T, H, W, 3)."""
    if not indices:
        raise ValueError("no frame indices requested")
    wanted = sorted(set(indices))
    with FrameReader(path) as reader:
        got = dict(zip(wanted, reader.read(wanted), strict=True))
    return np.stack([got[i] for i in indices])


class FrameReader:
    """Forward-only decoding of ascending frame indices, keeping the stream open between calls.

    Long videos are tracked window by window: each window's frames are decoded when needed and nothing
    else stays in memory, without re-reading the stream from the start for every window.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._files = _frame_files(self.path) if self.path.is_dir() else None
        self._cap: cv2.VideoCapture | None = None
        self._position = 0  # index of the next frame the stream will return

    def read(self, indices: list[int]) -> np.ndarray:
        """Frames for ascending `indices`, all at or after the last index read."""
        if not indices:
            raise ValueError("no frame indices requested")
        if self._files is not None:
            return np.stack([_read_image(self._files[i]) for i in indices])
        if indices != sorted(indices) or indices[0] < self._position:
            raise ValueError(f"{self.path}: FrameReader reads forward only (asked {indices[0]} at {self._position})")
        if self._cap is None:
            self._cap = cv2.VideoCapture(str(self.path))
            if not self._cap.isOpened():
                raise VideoError(f"{self.path}: cannot open as a video")
        frames = []
        for target in indices:
            while self._position < target:
                if not self._cap.grab():
                    raise VideoError(f"{self.path}: stream ends at frame {self._position}, frame {target} requested")
                self._position += 1
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                raise VideoError(f"{self.path}: cannot decode frame {target}")
            self._position += 1
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return np.stack(frames)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_inputs(paths: list[str | Path]) -> list[Path]:
    """Expand files, folders of videos and frame folders into a sorted list of video inputs."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"input {p} does not exist")
        if p.is_file():
            found.append(p)
        elif is_frame_folder(p):
            found.append(p)
        else:
            for child in sorted(p.iterdir()):
                if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES:
                    found.append(child)
                elif is_frame_folder(child):
                    found.append(child)
    return found
