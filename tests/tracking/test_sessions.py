"""Session-shaped tracking: image features once per frame, Hungarian matching under jitter, and reconditioning
that pulls a drifted track back at the next keyframe."""

from __future__ import annotations

import numpy as np
import pytest

from annotator import masks
from annotator.models.protocols import Prompt, TrackResult
from annotator.records import Detection, VideoItem
from annotator.stages.track import track_item
from annotator.testing.oracle_tracker import OracleTracker
from annotator.tracking.online import TrackingParams
from annotator.tracking.session import PromptSession
from tests.synthetic import H, W, true_boxes
from tests.tracking.test_online import FRAMES, idf1_and_switches, scene  # noqa: F401 - the shared fixture


def test_each_frame_costs_about_one_backbone_pass(scene, tiny_models: dict[str, str]) -> None:  # noqa: F811
    from annotator.models.sam2_video import Sam2VideoTracker

    item, truth = scene
    first = {}  # each object detected once, on the first keyframe that shows it; one held back to frame 24
    for k in range(0, FRAMES, 4):
        for gt_id in true_boxes(truth, k):
            first.setdefault(gt_id, k)
    first[max(g for g, k in first.items() if k == 0)] = 24
    detections = [Detection(frame=k, phrase=g - 1, box=true_boxes(truth, k)[g], score=1.0) for g, k in first.items()]
    entering = sorted({d.frame for d in detections})
    assert len(entering) == 3, entering
    tracker = Sam2VideoTracker(tiny_models["sam2_video"])
    calls = []
    tracker.model.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    lone = VideoItem(item.video_id, item.path, info=item.info, phrases=item.phrases, detections=detections)
    params = TrackingParams(window=16, score_threshold=0.0, min_area=0, max_lost_frames=10)
    tracks = track_item(tracker, params, lone)
    assert len(tracks) >= 3
    assert len(calls) <= 1.1 * FRAMES + len(entering), f"{len(calls)} backbone passes for {FRAMES} frames"


def jittered(item: VideoItem, pixels: float, seed: int = 0) -> VideoItem:
    rng = np.random.default_rng(seed)
    moved = [Detection(d.frame, d.phrase, [c + float(rng.uniform(-pixels, pixels)) for c in d.box], d.score)
             for d in item.detections]
    return VideoItem(item.video_id, item.path, info=item.info, phrases=item.phrases, detections=moved)


@pytest.mark.parametrize("recondition", ["box", "mask", "off"])
def test_jittered_boxes_keep_every_id(scene, recondition: str) -> None:  # noqa: F811
    item, truth = scene
    params = TrackingParams(window=12, max_lost_frames=10, recondition=recondition)
    tracks = track_item(OracleTracker(truth), params, jittered(item, 3.0))
    assert idf1_and_switches(tracks, truth) == (1.0, 0)


class DriftingOracle(OracleTracker):
    """The oracle, except that object `victim` drifts past frame `after`: its masks there are shifted `by` pixels
    to the right, and stay so when it is continued from its (drifted) mask. Only a box prompt (a fresh
    detection) on a later frame gives the true masks again."""

    def __init__(self, truth: dict[int, np.ndarray], victim: int, after: int, by: int) -> None:
        super().__init__(truth)
        self.victim, self.after, self.by = victim, after, by

    def open(self, frames: np.ndarray, positions: list[int]) -> PromptSession:
        return PromptSession(frames, positions, self.drifting, self.segment)

    def drifting(self, frames: np.ndarray, positions: list[int], prompts: list[Prompt],
                 reverse: bool = False) -> dict[int, TrackResult]:
        results = self.propagate(frames, positions, prompts, reverse)
        for p in prompts:
            drifts = p.mask is not None or p.frame <= self.after
            if drifts and not reverse and self.identify(p.frame, box=p.box, mask=p.mask) == self.victim:
                r = results[p.obj_id]
                shifted = np.stack([np.roll(m, self.by, axis=1) if f > self.after else m
                                    for f, m in zip(r.frames, r.masks, strict=True)])
                results[p.obj_id] = TrackResult(r.frames, shifted, r.scores)
        return results


def mean_iou(tracks: list, truth: dict[int, np.ndarray], gt_id: int, frames: range) -> float:
    (track,) = [t for t in tracks if t.phrase == gt_id - 1 and t.first_frame <= frames.start]
    got = dict(zip(track.masks.frames, masks.decode_batch(track.masks.rles, H, W), strict=True))
    return float(np.mean([masks.iou(got[f], truth[gt_id][f]) for f in frames if truth[gt_id][f].any()]))


def test_reconditioning_recovers_a_drifted_track_at_the_next_keyframe(scene) -> None:  # noqa: F811
    item, truth = scene
    # object 1 drifts from frame 13 on; keyframes every 4 frames: the detection on keyframe 16 re-prompts it
    after, drift = range(16, 23), range(13, 16)
    off = track_item(DriftingOracle(truth, 1, 12, 8), TrackingParams(window=12, max_lost_frames=10,
                                                                     recondition="off"), item)
    box = track_item(DriftingOracle(truth, 1, 12, 8), TrackingParams(window=12, max_lost_frames=10,
                                                                     recondition="box"), item)
    assert mean_iou(off, truth, 1, drift) < 0.9 and mean_iou(box, truth, 1, drift) < 0.9, "the drift is there"
    assert mean_iou(off, truth, 1, after) < 0.9, "without reconditioning the drift stays"
    assert mean_iou(box, truth, 1, after) == 1.0, "re-prompted with the keyframe's box: back on the object"
    assert [t.track_id for t in box if t.phrase == 0] == [1], "the drifted track kept its id"
