"""Ingest: open each video, choose the sampled frames and keyframes, decode them once into the frame store.

Decoding seeks (PyAV) and runs a chunk of frames at a time; each chunk is written to the run directory's
frame store as JPEG and thumbnailed for scene cuts in the same pass, so no later stage touches the source.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from annotator import frames, video
from annotator.records import VideoInfo, VideoItem
from annotator.stage import Count, PerItemStage, Probability, Rate, Resources, register

MIN_SIDE = 2  # the models' processors squeeze a 1-pixel side away, and the masks no longer fit the frame (a
# constant, not a parameter: a parameter would change every ingest fingerprint and redo finished runs)


@register
@dataclass
class IngestStage(PerItemStage):
    name = "ingest"
    version = "2"  # frames decoded once into the frame store
    resources = Resources(cpus=0.5)
    batch_size = 8
    outputs = ("info",)

    target_fps: Rate | None = 2.0  # None keeps every frame
    max_frames: Count | None = 64  # evenly thinned to at most this many sampled frames
    keyframe_every: Count = 4  # detect on every K-th sampled frame
    scene_cut_threshold: Probability | None = None  # also detect where a shot starts (mean grey change > this, 0..1)
    folder_fps: Rate = 25.0  # frame rate assumed for folders of frames
    frame_quality: Annotated[int, Field(ge=1, le=100)] = 90  # JPEG quality of the frame store
    frame_max_side: Annotated[int, Field(ge=16)] | None = None  # store frames no larger than this (None: as decoded)
    min_frames: Count = 1  # fewer decodable frames than this make the video an error

    def process_item(self, item: VideoItem) -> VideoItem:
        with video.FrameReader(item.path) as reader, ThreadPoolExecutor(2) as pool:
            meta = reader.meta(self.folder_fps)
            if min(meta.width, meta.height) < MIN_SIDE:
                raise video.VideoError(f"{item.path}: frame {meta.width}x{meta.height} is smaller than "
                                       f"{MIN_SIDE}x{MIN_SIDE} pixels, the least the models take")
            numbers = reader.frame_numbers()  # a frame folder's own frame numbers, gaps kept
            total = len(numbers) if numbers is not None else meta.num_frames
            try:
                indices, size, thumbs = self._decode(reader, item, self._sample(total, meta.fps, numbers), pool)
            except video.StreamEnded as end:  # the header overstates the frames: sample what is there
                if end.frames < 1:
                    raise
                item.count(self.name, {"header_frames_missing": total - end.frames})
                total = end.frames
                indices, size, thumbs = self._decode(reader, item, self._sample(total, meta.fps, None), pool)
            if reader.unreadable:
                item.count(self.name, {"unreadable_frames": len(reader.unreadable)})
        if len(indices) < self.min_frames:
            raise video.VideoError(f"{item.path}: {len(indices)} frames decode, fewer than min_frames="
                                   f"{self.min_frames}")
        cuts: list[int] = []
        if self.scene_cut_threshold is not None and len(thumbs) > 1:
            cuts = [i + 1 for i, d in enumerate(video.differences(thumbs)) if d > self.scene_cut_threshold]
        keyframes = sorted({*video.keyframe_positions(len(indices), self.keyframe_every), *cuts})
        resized = size != (meta.height, meta.width)
        item.info = VideoInfo(
            width=int(size[1]), height=int(size[0]), fps=meta.fps,
            num_frames=total,  # a frame folder: the images it holds (their own numbers are the frame indices)
            frame_indices=indices, keyframes=keyframes, scene_cuts=cuts, stored_frames=bool(self.run_root),
            source_width=meta.width if resized else 0, source_height=meta.height if resized else 0,
            header_frames=meta.num_frames,
        )
        return item

    def _sample(self, total: int, fps: float, numbers: list[int] | None) -> list[int]:
        positions = video.sample_indices(total, fps, self.target_fps, self.max_frames)
        return [numbers[p] for p in positions] if numbers is not None else positions

    def _decode(self, reader: video.FrameReader, item: VideoItem, indices: list[int],
                pool: ThreadPoolExecutor) -> tuple[list[int], tuple[int, int], list[np.ndarray]]:
        """Decode the sampled frames a chunk at a time into the frame store (JPEG encoding and writing, which
        release the GIL, overlap the next chunk's decoding). Returns the indices that decoded."""
        kept: list[int] = []
        thumbs: list[np.ndarray] = []
        size = (0, 0)
        pending = []
        for part, chunk in reader.chunks(indices):
            chunk = np.stack([frames.resize_max_side(f, self.frame_max_side) for f in chunk])
            size = chunk.shape[1:3]
            kept += part
            if self.run_root:
                pending.append(pool.submit(frames.write, self.run_root, item.video_id, part, chunk,
                                           self.frame_quality))
            if self.scene_cut_threshold is not None:
                thumbs += [video.thumbnail(f) for f in chunk]
        for job in pending:
            job.result()  # a failed write fails the item
        return kept, size, thumbs
