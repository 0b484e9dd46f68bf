"""Ingest: open each video, choose the sampled frames and keyframes, decode them once into the frame store.

Decoding seeks (PyAV) and runs a chunk of frames at a time; each chunk is written to the run directory's
frame store as JPEG and thumbnailed for scene cuts in the same pass, so no later stage touches the source.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

import cv2
import numpy as np
from pydantic import Field

from annotator import frames, video
from annotator.records import VideoInfo, VideoItem
from annotator.stage import Count, PerItemStage, Probability, Rate, Resources, register

_THUMB = (64, 36)


def thumbnail(frame: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


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

    def process_item(self, item: VideoItem) -> VideoItem:
        thumbs: list[np.ndarray] = []
        # JPEG encoding and writing (OpenCV and I/O release the GIL) overlap the decoding of the next chunk
        with video.FrameReader(item.path) as reader, ThreadPoolExecutor(2) as pool:
            meta = reader.meta(self.folder_fps)
            indices = video.sample_indices(meta.num_frames, meta.fps, self.target_fps, self.max_frames)
            size = (meta.height, meta.width)
            pending = []
            for part, chunk in reader.chunks(indices):
                chunk = np.stack([frames.resize_max_side(f, self.frame_max_side) for f in chunk])
                size = chunk.shape[1:3]
                if self.run_root:
                    pending.append(pool.submit(frames.write, self.run_root, item.video_id, part, chunk,
                                               self.frame_quality))
                if self.scene_cut_threshold is not None:
                    thumbs += [thumbnail(f) for f in chunk]
            for job in pending:
                job.result()  # a failed write fails the item
        cuts: list[int] = []
        if self.scene_cut_threshold is not None and len(thumbs) > 1:
            diffs = np.abs(np.diff(np.stack(thumbs), axis=0)).mean(axis=(1, 2))
            cuts = [i + 1 for i, d in enumerate(diffs) if d > self.scene_cut_threshold]
        keyframes = sorted({*video.keyframe_positions(len(indices), self.keyframe_every), *cuts})
        resized = size != (meta.height, meta.width)
        item.info = VideoInfo(
            width=int(size[1]), height=int(size[0]), fps=meta.fps, num_frames=meta.num_frames,
            frame_indices=indices, keyframes=keyframes, scene_cuts=cuts, stored_frames=bool(self.run_root),
            source_width=meta.width if resized else 0, source_height=meta.height if resized else 0,
        )
        return item
