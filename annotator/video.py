"""Decode and sample videos (files via PyAV with seeking, or folders of frame images via OpenCV).

Frames are returned RGB uint8 `(T, H, W, 3)`. Decoding reads only the frames asked for: it seeks to the
keyframe before a far target and decodes through short gaps, so 12 frames of a 10-minute clip cost about
12 GOPs, not the whole stream.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from annotator import storage

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}
CHUNK_BYTES = 24 * 2**20  # decoded frames held at once by `FrameReader.chunks`
SEEK_GAP = 48  # frames: a longer gap to the next wanted frame is crossed by seeking, a shorter one by decoding


class VideoError(Exception):
    """A video that cannot be opened or decoded; the message says why."""


class StreamEnded(VideoError):
    """The stream holds fewer frames than asked for (its header overstates them): `frames` is how many it has."""

    def __init__(self, message: str, frames: int) -> None:
        super().__init__(message)
        self.frames = frames


def frame_number(path: str) -> int | None:
    """The frame number a frame file's name carries (`00005.jpg`, `frame_0005.png` -> 5), if any."""
    match = re.search(r"(\d+)\D*$", Path(storage.name(path)).stem)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class VideoMeta:
    width: int
    height: int
    fps: float
    num_frames: int


def _suffix(path: str) -> str:
    return Path(storage.name(path)).suffix.lower()


def _frame_files(path: str) -> list[str]:
    return [f for f in storage.list_files(path) if _suffix(f) in FRAME_SUFFIXES]


def is_frame_folder(path: str | Path) -> bool:
    return storage.isdir(str(path)) and bool(_frame_files(str(path)))


def probe(path: str | Path, folder_fps: float = 25.0) -> VideoMeta:
    """Size, fps and frame count; raises VideoError if the first frame cannot be decoded."""
    path = str(path)
    if not storage.exists(path):
        raise VideoError(f"{path}: file not found")
    if storage.isdir(path):
        files = _frame_files(path)
        if not files:
            raise VideoError(f"{path}: folder holds no .jpg/.png frames")
        first = _read_image(files[0])
        return VideoMeta(first.shape[1], first.shape[0], folder_fps, len(files))
    with _Decoder(path) as decoder:
        return decoder.meta(folder_fps, check_decode=True)


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


def thumbnail(frame: np.ndarray, size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """A small grey copy (0..1) of an RGB frame: what scene cuts are measured on."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def differences(thumbs: list[np.ndarray]) -> np.ndarray:
    """Mean absolute change between consecutive thumbnails; element i compares frame i with i+1."""
    return np.abs(np.diff(np.stack(thumbs), axis=0)).mean(axis=(1, 2))


def frame_differences(path: str | Path, indices: list[int], chunk: int = 16) -> np.ndarray:
    """`differences` of the given source frames, decoded a chunk at a time (a long video never sits in memory)."""
    with FrameReader(path) as reader:
        return differences([thumbnail(f) for _, frames in reader.chunks(indices, chunk) for f in frames])


def _read_image(path: str) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(storage.read_bytes(path), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError(f"{path}: cannot decode image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """Decode the given source-frame indices (any order, duplicates allowed) as RGB (T, H, W, 3)."""
    with FrameReader(path) as reader:
        return reader.read(indices)


def rgb(frame: av.VideoFrame, out: np.ndarray | None = None) -> np.ndarray:
    """The frame as RGB (H, W, 3), converted once and copied once (into `out` when given: no temporary)."""
    converted = frame.reformat(format="rgb24")
    plane = converted.planes[0]
    h, w = converted.height, converted.width
    view = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, : w * 3].reshape(h, w, 3)
    if out is None:
        return view.copy()
    out[...] = view
    return out


class _Decoder:
    """PyAV decoding of a file by source-frame index: seeks over long gaps, decodes through short ones.

    A frame's index is its presentation time times the stream's frame rate, so seeking lands on exact
    frames (the decoder starts at the keyframe before the target and drops frames up to it).
    """

    def __init__(self, path: str, seek_gap: int = SEEK_GAP) -> None:
        self.path = path
        self.seek_gap = seek_gap
        self._file = None
        try:
            if storage.is_uri(path):  # object stores: ranged reads through fsspec
                fs, p = storage.filesystem(path)
                self._file = fs.open(p, "rb")
            self.container = av.open(self._file or path)
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path}: cannot open as a video (unsupported or corrupt container: {exc})") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{path}: cannot open as a video (the {self.container.format.name} container holds no "
                             "video stream with frames)")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate else 0.0
        self.time_base = float(self.stream.time_base or 0) or 1.0 / 90000
        start = self.stream.start_time
        self.start = float(start * self.time_base) if start is not None else 0.0
        self._frames: Iterator[av.VideoFrame] | None = None
        self._next = 0  # index of the frame the open decode iterator yields next (approximately)
        self._it: Iterator[tuple[int, av.VideoFrame]] | None = None  # decoded (index, frame) pairs, kept open
        self._position = -1  # index of the last frame taken from it

    def meta(self, default_fps: float, check_decode: bool = False) -> VideoMeta:
        """Size, rate and frame count from the container's header; `check_decode` also decodes the first frame
        (a reader about to decode anyway skips that: the first frame it reads says the same)."""
        ctx = self.stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if check_decode or not (width and height):
            first = self.first()
            height, width = first.shape[:2]
        count = self.header_frames()
        if count <= 0:
            raise VideoError(f"{self.path}: container reports no frames")
        return VideoMeta(width, height, self.fps or default_fps, count)

    def header_frames(self) -> int:
        if self.stream.frames:
            return int(self.stream.frames)
        duration = self.stream.duration
        if duration is not None and self.fps:
            return round(float(duration * self.time_base) * self.fps)
        if self.container.duration and self.fps:
            return round(self.container.duration / av.time_base * self.fps)
        return 0

    def _index(self, frame: av.VideoFrame, fallback: int) -> int:
        if frame.pts is None or not self.fps:
            return fallback
        return round((frame.pts * self.time_base - self.start) * self.fps)

    def _restart(self, target: int) -> None:
        if target > 0:
            seconds = target / self.fps + self.start if self.fps else 0.0
            self.container.seek(int(seconds / self.time_base), stream=self.stream, backward=True, any_frame=False)
        else:
            self.container.seek(0)
        self._frames = self.container.decode(self.stream)
        self._next = -1  # unknown until the first frame arrives

    def _decoded(self) -> Iterator[tuple[int, av.VideoFrame]]:
        counter = self._next
        assert self._frames is not None
        try:
            for frame in self._frames:
                counter += 1
                index = self._index(frame, counter)
                counter = index
                yield index, frame
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path}: decoding failed ({exc})") from None

    def first(self) -> np.ndarray:
        self._it, self._position = None, -1
        self._restart(0)
        for _, frame in self._decoded():
            return rgb(frame)
        raise VideoError(f"{self.path}: no decodable frame (corrupt or empty video stream)")

    def read(self, indices: list[int]) -> Iterator[av.VideoFrame]:
        """Decoded frames for ascending, distinct source indices (a missing index yields the next frame).

        The decoder keeps its place between calls, so reading a video chunk by chunk decodes it once.
        """
        for target in indices:
            seeked = self._it is None or target - self._position > self.seek_gap or target <= self._position
            if seeked:
                self._restart(target)
                self._it = self._decoded()
            while True:
                assert self._it is not None
                step = next(self._it, None)
                if step is None:
                    self._it = None
                    raise StreamEnded(f"{self.path}: stream ends at frame {self._position + 1}, "
                                     f"frame {target} requested", self._position + 1)
                index, frame = step
                if seeked and index > target > 0:
                    # the seek landed past the target (no keyframe index before it): decode from the start
                    self._restart(0)
                    self._it, seeked = self._decoded(), False
                    continue
                seeked = False
                self._position = index
                if index >= target:
                    yield frame
                    break

    def close(self) -> None:
        self.container.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> _Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameReader:
    """Frames of one video by ascending source index, keeping the decoder open between calls.

    Long videos are tracked window by window: each window's frames are decoded when needed and nothing
    else stays in memory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._files = _frame_files(self.path) if storage.isdir(self.path) else None
        self._by_number: dict[int, str] = {}
        if self._files is not None:
            numbers = [frame_number(f) for f in self._files]
            if None not in numbers and len(set(numbers)) == len(numbers):  # the files' own frame numbers
                self._by_number = dict(zip(numbers, self._files, strict=True))  # type: ignore[arg-type]
            else:  # names without distinct numbers: frames are numbered in name order
                self._by_number = dict(enumerate(self._files))
        self.unreadable: list[int] = []  # frame-folder images that could not be decoded (skipped)
        self._decoder: _Decoder | None = None

    def read(self, indices: list[int]) -> np.ndarray:
        """Frames for the given indices (any order, duplicates allowed) as RGB (T, H, W, 3)."""
        if not indices:
            raise ValueError("no frame indices requested")
        if self._files is not None:
            return np.stack([_read_image(self._by_number[i]) for i in indices])
        if self._decoder is None:
            self._decoder = _Decoder(self.path)
        wanted = sorted(set(indices))
        out: np.ndarray | None = None
        for i, frame in enumerate(self._decoder.read(wanted)):
            if out is None:
                out = np.empty((len(wanted), frame.height, frame.width, 3), np.uint8)
            rgb(frame, out[i])
        assert out is not None
        if wanted == indices:
            return out
        slot = {index: i for i, index in enumerate(wanted)}
        return out[[slot[i] for i in indices]]

    def frame_numbers(self) -> list[int] | None:
        """A frame folder's source frame numbers in order (gaps kept: `00001, 00002, 00005`); None for a file."""
        return sorted(self._by_number) if self._files is not None else None

    def read_available(self, indices: list[int]) -> tuple[list[int], np.ndarray | None]:
        """Like `read`, but a frame-folder image that does not decode is skipped (and listed in `unreadable`)."""
        if self._files is None:
            return indices, self.read(indices)
        kept, images = [], []
        for i in indices:
            try:
                images.append(_read_image(self._by_number[i]))
                kept.append(i)
            except VideoError:
                self.unreadable.append(i)
        return kept, np.stack(images) if images else None

    def meta(self, folder_fps: float = 25.0) -> VideoMeta:
        """What `probe` says, from this reader's open container (one open per video, no extra decode)."""
        if self._files is not None:
            for f in self._files:  # the first image that decodes gives the size
                try:
                    first = _read_image(f)
                except VideoError:
                    continue
                return VideoMeta(first.shape[1], first.shape[0], folder_fps, len(self._files))
            raise VideoError(f"{self.path}: folder holds no decodable .jpg/.png frame")
        if not storage.exists(self.path):
            raise VideoError(f"{self.path}: file not found")
        if self._decoder is None:
            self._decoder = _Decoder(self.path)
        return self._decoder.meta(folder_fps)

    def chunks(self, indices: list[int], size: int | None = None) -> Iterator[tuple[list[int], np.ndarray]]:
        """Ascending indices decoded a chunk at a time, so a long selection never sits in memory whole.

        By default a chunk stays under 24 MB: below glibc's largest mmap threshold, so each chunk's buffer reuses
        the last one's pages instead of faulting fresh ones in (a third of dense decoding's time otherwise).
        """
        if size is None:
            meta = self.meta()
            size = max(1, CHUNK_BYTES // max(1, meta.width * meta.height * 3))
        for start in range(0, len(indices), size):
            part, frames = self.read_available(indices[start : start + size])
            if frames is not None:
                yield part, frames

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
