"""Segment: SAM 3 finds and tracks every instance of each phrase in one pass (replaces detect + track).

Each phrase's normalised text is a SAM 3 text prompt; an object's phrase is the first phrase with that text.
Long videos run window by window (`window` sampled frames, consecutive windows sharing `overlap` frames), so
memory is bounded by the window. SAM 3 restarts its ids in every session: each window's objects are matched one
to one (Hungarian, same phrase, mask IoU at least `iou_threshold`) to the video's tracks on the last shared
frame, where both sessions have tracked them for a while (a session's first frame holds raw detections, which
need not look like a track's mask); the rest start new tracks, so ids are stable over the whole video.
Objects whose detection score is below their phrase's threshold are dropped; each kept track also gives the
item a detection (its first box and that score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from annotator import masks
from annotator.models import memory
from annotator.records import Detection, MaskTrack, Track, VideoItem
from annotator.stage import NonNegative, PerItemStage, Probability, Resources, register
from annotator.tracking.online import match


@dataclass
class _Track:
    track_id: int
    phrase: int
    prompt_frame: int
    box: list[float]
    score: float
    frames: dict[int, tuple[str, float]] = field(default_factory=dict)  # position -> (rle, tracker score)


@register
@dataclass
class SegmentStage(PerItemStage):
    name = "segment"
    resources = Resources(cpus=1.0, gpus=0.5)
    outputs = ("detections", "tracks")
    runtime_params = ("device", "gpu_memory_gb")

    model: str = "facebook/sam3"
    window: Annotated[int, Field(ge=2)] = 32  # sampled frames per SAM 3 session
    overlap: Annotated[int, Field(ge=1)] = 2  # frames consecutive windows share (ids are matched on the last one)
    score_threshold: Probability = 0.5  # detection score an object needs when it is created
    phrase_thresholds: dict[str, Probability] = field(default_factory=dict)  # per phrase (normalised text)
    iou_threshold: Probability = 0.5  # mask IoU that carries an id across a window boundary
    min_area: NonNegative = 1  # pixels below which a frame's mask counts as empty
    device: str = "auto"  # the GPU when there is one
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # bfloat16 halves memory on a GPU
    gpu_memory_gb: Annotated[float, Field(gt=0)] | None = None  # the GPU's memory: a window that cannot fit is refused

    def __post_init__(self) -> None:
        if self.overlap >= self.window:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than window ({self.window})")

    def check_resources(self, resources: Resources) -> None:
        memory.check_window(self.model, self.window, self.gpu_memory_gb, resources.gpus, self.dtype)

    def setup(self) -> None:
        from annotator.models.sam3_video import Sam3VideoSegmenter

        memory.check_window_on_device(self.name, self.model, self.window, self.dtype, self.device)
        self._segmenter = Sam3VideoSegmenter(self.model, self.device, self.dtype)

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        item.detections, item.tracks = [], []
        if item.phrases:
            tracks = segment_item(self._segmenter.window, self, item, lambda p: self.frames(item, p))
            item.tracks = [t for t, _ in tracks]
            item.detections = [d for _, d in tracks]
        return item


Window = Callable[[np.ndarray, list[str]], dict]


def segment_item(window: Window, params: SegmentStage, item: VideoItem,
                 read: Callable[[list[int]], np.ndarray]) -> list[tuple[Track, Detection]]:
    """Windows over the item's sampled frames, stitched into tracks with stable ids."""
    assert item.info is not None
    h, w = item.info.height, item.info.width
    norms = [p.norm for p in item.phrases]
    phrase_of = {}
    for i, norm in enumerate(norms):
        phrase_of.setdefault(norm, i)
    n = len(item.info.frame_indices)
    tracks: dict[int, _Track] = {}
    a = 0
    while True:
        b = min(a + params.window - 1, n - 1)
        positions = list(range(a, b + 1))
        objects = window(read(positions), list(phrase_of))
        kept = {i: o for i, o in objects.items()
                if o.detection_score >= params.phrase_thresholds.get(o.phrase, params.score_threshold)}
        shared = min(a + params.overlap - 1, b)  # the last frame this window shares with the previous one
        ids = _stitch(kept, tracks, a, shared, params.iou_threshold, phrase_of, h, w) if a else {}
        for local_id, obj in sorted(kept.items()):
            track = tracks.get(ids.get(local_id, -1))
            if track is None:
                track_id = max(tracks, default=0) + 1
                track = tracks[track_id] = _Track(track_id, phrase_of[obj.phrase], a + obj.first, obj.box,
                                                  obj.detection_score)
            frames = sorted(f for f in obj.masks if a + f not in track.frames)
            if frames:
                rles = masks.encode_batch(np.stack([obj.masks[f] for f in frames]))
                for f, rle in zip(frames, rles, strict=True):
                    track.frames[a + f] = (rle, obj.scores[f])
        if b == n - 1:
            break
        a = b - params.overlap + 1
    return [out for t in sorted(tracks.values(), key=lambda t: t.track_id) if (out := _finish(t, params, h, w))]


def _stitch(objects: dict, tracks: dict[int, _Track], a: int, shared: int, threshold: float,
            phrase_of: dict[str, int], h: int, w: int) -> dict[int, int]:
    """This window (from `a`)'s object id -> the video's track id, by mask IoU on frame `shared`."""
    ending = [t for t in tracks.values() if shared in t.frames]
    local = sorted(i for i, o in objects.items() if shared - a in o.masks)
    iou = np.full((len(local), len(ending)), -1.0)  # -1: another phrase, never a match
    for r, i in enumerate(local):
        obj = objects[i]
        for c, t in enumerate(ending):
            if phrase_of[obj.phrase] == t.phrase:
                iou[r, c] = masks.iou(obj.masks[shared - a], masks.decode(t.frames[shared][0], h, w))
    return {local[r]: ending[c].track_id for r, c in match(iou, threshold).items()}


def _finish(t: _Track, params: SegmentStage, h: int, w: int) -> tuple[Track, Detection] | None:
    """Frames from the first to the last where the mask is not empty; None when it never is."""
    seen = [f for f in sorted(t.frames) if masks.area(t.frames[f][0], h, w) >= max(1, params.min_area)]
    if not seen:
        return None
    frames = [f for f in sorted(t.frames) if seen[0] <= f <= seen[-1]]
    track = Track(track_id=t.track_id, phrase=t.phrase, prompt_frame=t.prompt_frame, prompt_box=t.box,
                  masks=MaskTrack(frames=frames, rles=[t.frames[f][0] for f in frames],
                                  scores=[t.frames[f][1] for f in frames]),
                  first_frame=seen[0], last_frame=seen[-1], visible_frames=len(seen),
                  mean_score=round(float(np.mean([t.frames[f][1] for f in seen])), 6))
    return track, Detection(frame=t.prompt_frame, phrase=t.phrase, box=t.box, score=t.score)
