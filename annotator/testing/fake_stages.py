"""Model stand-ins with a calibrated cost, for executor tests and benchmarks: each sleeps a known time and
fills the item as the real stage would (frames, caption, phrases, keyframe boxes, mask tracks), so the real
`link` and `assemble` stages, the checkpoints and the export run on realistic items.

Costs follow DESIGN §10: caption per video, detect per keyframe, track per frame and object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator import masks
from annotator.records import Detection, MaskTrack, Phrase, Track, VideoInfo, VideoItem
from annotator.stage import PerItemStage, Resources

WORDS = ["rabbit", "tree", "butterfly"]


def _spend(seconds: float) -> None:
    """The model's time; a zero-cost fake costs nothing (`sleep(0)` still yields the CPU)."""
    if seconds > 0:
        time.sleep(seconds)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    y, x = np.ogrid[:h, :w]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


@dataclass
class FakeIngest(PerItemStage):
    name = "ingest"
    resources = Resources(cpus=0.1)
    outputs = ("info",)

    frames: int = 16
    keyframe_every: int = 4
    width: int = 320
    height: int = 180
    cost_s: float = 0.0

    def process_item(self, item: VideoItem) -> VideoItem:
        _spend(self.cost_s)
        item.info = VideoInfo(width=self.width, height=self.height, fps=25.0, num_frames=self.frames * 10,
                              frame_indices=[i * 10 for i in range(self.frames)],
                              keyframes=list(range(0, self.frames, self.keyframe_every)))
        return item


@dataclass
class FakeCaption(PerItemStage):
    name = "caption"
    resources = Resources(cpus=0.1, gpus=1.0)
    outputs = ("caption", "caption_model", "question")

    cost_s: float = 2.0  # per video

    def process_item(self, item: VideoItem) -> VideoItem:
        _spend(self.cost_s)
        item.caption = f"a {WORDS[0]} sits under a {WORDS[1]} while a {WORDS[2]} flies by ({item.video_id})"
        item.caption_model = "fake"
        return item


@dataclass
class FakePhrases(PerItemStage):
    name = "phrases"
    resources = Resources(cpus=0.1)
    outputs = ("phrases", "dropped_phrases")

    def process_item(self, item: VideoItem) -> VideoItem:
        assert item.caption is not None
        item.phrases = []
        for word in WORDS:
            start = item.caption.index(word)
            item.phrases.append(Phrase(word, start, start + len(word), word))
        return item


@dataclass
class FakeDetect(PerItemStage):
    name = "detect"
    resources = Resources(cpus=0.1, gpus=0.25)
    outputs = ("detections",)

    cost_s: float = 0.12  # per keyframe

    def process_item(self, item: VideoItem) -> VideoItem:
        assert item.info is not None
        _spend(self.cost_s * len(item.info.keyframes))
        w, h = item.info.width, item.info.height
        item.detections = [Detection(frame=k, phrase=p, box=[0.1 * w * (p + 1), 0.2 * h, 0.1 * w * (p + 3), 0.6 * h],
                                     score=0.9) for k in item.info.keyframes for p in range(len(item.phrases))]
        return item


@dataclass
class FakeTrack(PerItemStage):
    name = "track"
    resources = Resources(cpus=0.1, gpus=0.5)
    outputs = ("tracks",)

    cost_s: float = 0.025  # per frame, times (1 + 0.3 x objects)

    def process_item(self, item: VideoItem) -> VideoItem:
        assert item.info is not None
        n, objects = len(item.info.frame_indices), len(item.phrases)
        _spend(self.cost_s * n * (1 + 0.3 * objects))
        h, w = item.info.height, item.info.width
        rng = np.random.default_rng(sum(map(ord, item.video_id)))  # every video its own shapes, as real ones
        item.tracks = []
        for p in range(objects):
            cy, cx, ry, rx = rng.uniform([0.3, 0.15, 0.08, 0.05], [0.6, 0.45, 0.2, 0.12]) * [h, w, h, w]
            stack = np.stack([_ellipse(h, w, cy + rng.normal(0, 0.01 * h), cx + 0.01 * w * f + 0.2 * w * p,
                                       ry * rng.uniform(0.9, 1.1), rx * rng.uniform(0.9, 1.1)) for f in range(n)])
            item.tracks.append(Track(
                track_id=p + 1, phrase=p, prompt_frame=0, prompt_box=[0.0, 0.0, 1.0, 1.0],
                masks=MaskTrack(frames=list(range(n)), rles=masks.encode_batch(stack), scores=[0.9] * n),
                first_frame=0, last_frame=n - 1, visible_frames=n, mean_score=0.9,
            ))
        return item


@dataclass
class Gate(PerItemStage):
    """Holds the videos in `hold` until the file `release` exists: a test acts on a run at a known point (a node
    removed while these videos are in flight). Waits at most `wait_s`, never for ever."""

    name = "gate"
    resources = Resources(cpus=0.1)
    outputs = ()

    release: str = ""
    hold: list[str] = field(default_factory=list)
    wait_s: float = 300.0

    def process_item(self, item: VideoItem) -> VideoItem:
        deadline = time.monotonic() + self.wait_s
        while item.video_id in self.hold and not Path(self.release).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate: {self.release} did not appear in {self.wait_s:g} s")
            time.sleep(0.05)
        return item


def fake_stages(caption_s: float = 2.0, detect_s: float = 0.12, track_s: float = 0.025, frames: int = 16,
                keyframe_every: int = 4, width: int = 320, height: int = 180) -> list[PerItemStage]:
    """The raw-video flow with calibrated fakes for the models and the real link and assemble stages."""
    from annotator.stages.assemble import AssembleStage
    from annotator.stages.link import LinkStage

    return [FakeIngest(frames=frames, keyframe_every=keyframe_every, width=width, height=height),
            FakeCaption(cost_s=caption_s), FakePhrases(), FakeDetect(cost_s=detect_s), FakeTrack(cost_s=track_s),
            LinkStage(), AssembleStage(questions=["Describe the video and segment what you mention."])]
