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


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError(f"{path}: cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """Decode the given source-frame indices (any order, duplicates allowed) as RGB (T, H, W, 3)."""
    path = Path(path)
    if not indices:
        raise ValueError("no frame indices requested")
    if path.is_dir():
        files = _frame_files(path)
        return np.stack([_read_image(files[i]) for i in indices])
    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: cannot open as a video")
        position = 0
        for target in wanted:
            while position < target:
                if not cap.grab():
                    raise VideoError(f"{path}: stream ends at frame {position}, frame {target} requested")
                position += 1
            ok, bgr = cap.read()
            if not ok or bgr is None:
                raise VideoError(f"{path}: cannot decode frame {target}")
            position += 1
            got[target] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return np.stack([got[i] for i in indices])


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
