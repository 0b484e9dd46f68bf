"""Tracking id logic, exactly: oracle tracker + true boxes on keyframes, judged by motmetrics."""

from __future__ import annotations

from pathlib import Path

import motmetrics as mm
import numpy as np
import pytest

from annotator import masks
from annotator.records import Detection, Phrase, Track, VideoInfo, VideoItem
from annotator.stages.track import track_item
from annotator.testing.oracle_tracker import OracleTracker
from annotator.tracking.online import TrackingParams, match
from tests.synthetic import H, W, render, true_boxes, write_video

FRAMES, EVERY = 40, 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoItem, dict[int, np.ndarray]]:
    video, truth, names = render(FRAMES)
    path = write_video(tmp_path_factory.mktemp("synthetic") / "scene.mp4", video)
    keyframes = list(range(0, FRAMES, EVERY))
    detections = [
        Detection(frame=k, phrase=gt_id - 1, box=box, score=1.0)
        for k in keyframes
        for gt_id, box in true_boxes(truth, k).items()
    ]
    phrases = [Phrase(n, 0, len(n), n) for n in names]
    info = VideoInfo(width=W, height=H, fps=10.0, num_frames=FRAMES, frame_indices=list(range(FRAMES)),
                     keyframes=keyframes)
    return VideoItem("scene", str(path), info=info, phrases=phrases, detections=detections), truth


def idf1_and_switches(tracks: list[Track], truth: dict[int, np.ndarray]) -> tuple[float, int]:
    acc = mm.MOTAccumulator(auto_id=True)
    hyp = {t.track_id: dict(zip(t.masks.frames, t.masks.rles, strict=True)) for t in tracks}
    for f in range(FRAMES):
        gt_ids = [g for g, m in truth.items() if m[f].any()]
        hyp_masks = {i: masks.decode(r[f], H, W) for i, r in hyp.items() if f in r}
        hyp_ids = [i for i, m in hyp_masks.items() if m.any()]
        dist = [[1 - iou if (iou := masks.iou(truth[g][f], hyp_masks[h])) >= 0.5 else np.nan for h in hyp_ids]
                for g in gt_ids]
        acc.update(gt_ids, hyp_ids, dist)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "num_switches"], name="scene")
    return float(summary["idf1"].iloc[0]), int(summary["num_switches"].iloc[0])


@pytest.mark.parametrize("window", [12, 64])
def test_oracle_tracks_are_perfect(scene, window: int) -> None:
    item, truth = scene
    params = TrackingParams(window=window, max_lost_frames=10)
    tracks = track_item(OracleTracker(truth), params, item)
    idf1, switches = idf1_and_switches(tracks, truth)
    assert idf1 == 1.0 and switches == 0
    assert [t.track_id for t in tracks] == [1, 2, 3, 4, 5]  # the object that left and came back kept its id
    by_phrase = {t.phrase: t for t in tracks}
    cup = by_phrase[3]  # enters at frame 10, first detected on keyframe 12
    assert cup.prompt_frame == 12 and cup.first_frame == 10 and cup.masks.frames[0] == 10
    for t in tracks:
        gt = truth[t.phrase + 1]
        visible = np.flatnonzero(gt.any(axis=(1, 2)))
        assert (t.first_frame, t.last_frame, t.visible_frames) == (visible[0], visible[-1], len(visible))
        decoded = masks.decode_batch(t.masks.rles, H, W)
        assert np.array_equal(decoded, gt[t.masks.frames])
        assert t.mean_score == 1.0


def test_a_track_ends_after_max_lost_frames(scene) -> None:
    item, truth = scene
    tracks = track_item(OracleTracker(truth), TrackingParams(window=12, max_lost_frames=5), item)
    flag = [t for t in tracks if t.phrase == 4]  # out of view for 9 frames > 5: a second track on return
    assert [(t.first_frame, t.last_frame) for t in flag] == [(0, 14), (24, 39)]
    assert flag[1].track_id == 6


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="max_lost_frames"):
        TrackingParams(window=8, max_lost_frames=8)


def test_match_is_one_to_one_with_the_largest_total_iou() -> None:
    iou = np.array([[0.9, 0.6], [0.8, 0.1], [0.2, 0.3]])
    assert match(iou, 0.5) == {0: 1, 1: 0}, "greedy would take 0.9 and leave row 1 unmatched"
    assert match(np.array([[0.6, 0.9], [0.7, 0.1]]), 0.5) == {0: 1, 1: 0}
    assert match(np.array([[0.45, 0.9], [0.4, 0.1]]), 0.5) == {0: 1}, "pairs under the threshold never count"
    assert match(np.zeros((0, 3)), 0.5) == {}
    assert match(np.array([[0.0, -1.0], [-1.0, 0.2]]), 0.0) == {0: 0, 1: 1}, "threshold 0: any pair of a phrase"
    assert match(np.array([[-1.0, 0.0]]), 0.0) == {0: 1}, "never across phrases"


def test_tiny_sam2_forward_backward_and_windows(scene, tiny_models: dict[str, str]) -> None:
    from annotator.models.sam2_video import Sam2VideoTracker

    item, _ = scene
    params = TrackingParams(window=12, score_threshold=0.0, min_area=0, max_lost_frames=10)
    tracks = track_item(Sam2VideoTracker(tiny_models["sam2_video"]), params, item)
    ids = [t.track_id for t in tracks]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 5
    first = tracks[0]
    assert first.prompt_frame == 0 and first.masks.frames == list(range(FRAMES)), "id kept over 3 window cuts"
    later = [t for t in tracks if t.prompt_frame > 0]
    assert later and all(t.first_frame < t.prompt_frame for t in later), "backward propagation ran"
    for t in tracks:
        assert len(t.masks.rles) == len(t.masks.frames) == len(t.masks.scores)
        assert masks.decode(t.masks.rles[0], H, W).shape == (H, W)


def test_frame_folder_input_gives_the_same_tracks(scene, tmp_path: Path) -> None:
    import cv2

    item, truth = scene
    video, _, _ = render(FRAMES)
    for i, frame in enumerate(video):
        cv2.imwrite(str(tmp_path / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    folder_item = VideoItem("scene", str(tmp_path), info=item.info, phrases=item.phrases, detections=item.detections)
    params = TrackingParams(window=12, max_lost_frames=10)
    a = track_item(OracleTracker(truth), params, item)
    b = track_item(OracleTracker(truth), params, folder_item)
    assert a == b
