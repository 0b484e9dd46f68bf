"""Ingest: open each video, check it decodes, choose the sampled frames and keyframes."""

from __future__ import annotations

from dataclasses import dataclass

from annotator import video
from annotator.records import VideoInfo, VideoItem
from annotator.stage import PerItemStage, Resources, register


@register
@dataclass
class IngestStage(PerItemStage):
    name = "ingest"
    resources = Resources(cpus=0.5)
    batch_size = 8

    target_fps: float | None = 2.0  # None keeps every frame
    max_frames: int | None = 64  # evenly thinned to at most this many sampled frames
    keyframe_every: int = 4  # detect on every K-th sampled frame
    scene_cut_threshold: float | None = None  # also detect where a shot starts (mean grey change > this, 0..1)
    folder_fps: float = 25.0  # frame rate assumed for folders of frames

    def process_item(self, item: VideoItem) -> VideoItem:
        meta = video.probe(item.path, self.folder_fps)
        indices = video.sample_indices(meta.num_frames, meta.fps, self.target_fps, self.max_frames)
        # read the last sampled frame too: a truncated stream fails here, not three stages later
        video.read_frames(item.path, [indices[-1]])
        cuts = [] if self.scene_cut_threshold is None else video.scene_cut_positions(
            item.path, indices, self.scene_cut_threshold)
        keyframes = sorted({*video.keyframe_positions(len(indices), self.keyframe_every), *cuts})
        item.info = VideoInfo(
            width=meta.width, height=meta.height, fps=meta.fps, num_frames=meta.num_frames,
            frame_indices=indices, keyframes=keyframes, scene_cuts=cuts,
        )
        return item
