"""Track: SAM2 mask tracks from keyframe detections, with stable ids (see `annotator.tracking.online`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from annotator import video
from annotator.models import memory
from annotator.models.protocols import Tracker
from annotator.records import Detection, Track, VideoItem
from annotator.stage import Count, NonNegative, PerItemStage, Probability, Resources, register
from annotator.tracking.online import OnlineTracking, TrackingParams


@register
@dataclass
class TrackStage(PerItemStage):
    name = "track"
    version = "3"  # sessions per window, Hungarian matching, reconditioning on matched detections
    resources = Resources(cpus=1.0, gpus=0.5)
    outputs = ("tracks",)
    runtime_params = ("device", "gpu_memory_gb")

    model: str = "facebook/sam2.1-hiera-large"
    window: Annotated[int, Field(ge=2)] = 32
    iou_threshold: Probability = 0.5
    score_threshold: Probability = 0.5
    min_area: NonNegative = 1
    max_lost_frames: Count = 16
    recondition: Literal["box", "mask", "off"] = "box"  # re-prompt a live track with the detection it matched
    device: str = "auto"  # the GPU when there is one
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # bfloat16 halves memory on a GPU
    gpu_memory_gb: Annotated[float, Field(gt=0)] | None = None  # the GPU's memory: a window that cannot fit is refused

    def __post_init__(self) -> None:
        self.tracking_params()  # validate now, at config time

    def check_resources(self, resources: Resources) -> None:
        memory.check_window(self.model, self.window, self.gpu_memory_gb, resources.gpus, self.dtype)

    def tracking_params(self) -> TrackingParams:
        return TrackingParams(window=self.window, iou_threshold=self.iou_threshold,
                              score_threshold=self.score_threshold, min_area=self.min_area,
                              max_lost_frames=self.max_lost_frames, recondition=self.recondition)

    def setup(self) -> None:
        from annotator.models.sam2_video import Sam2VideoTracker

        memory.check_window_on_device(self.name, self.model, self.window, self.dtype, self.device)
        self._tracker: Tracker = Sam2VideoTracker(self.model, self.device, self.dtype)

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        item.tracks = track_item(self._tracker, self.tracking_params(), item, lambda p: self.frames(item, p))
        return item


def track_item(tracker: Tracker, params: TrackingParams, item: VideoItem,
               read: Callable[[list[int]], np.ndarray] | None = None) -> list[Track]:
    """Run online tracking over an item's sampled frames; `read(positions)` fetches them window by window."""
    assert item.info is not None
    if not item.detections:
        return []
    by_frame: dict[int, list[Detection]] = defaultdict(list)
    for d in item.detections:
        by_frame[d.frame].append(d)
    if read is None:
        with video.FrameReader(item.path) as reader:  # no frame store: decode the source, one open decoder
            indices = item.info.frame_indices
            return track_item(tracker, params, item, lambda p: reader.read([indices[i] for i in p]))
    online = OnlineTracking(tracker, params, item.info.height, item.info.width)
    return online.run(read, len(item.info.frame_indices), by_frame)
