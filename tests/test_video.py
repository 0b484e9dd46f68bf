from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator import video
from tests.conftest import SAMPLE


def test_sampling_at_target_fps_and_cap() -> None:
    idx = video.sample_indices(132, 25.0, target_fps=2.0)
    assert idx == [0, 12, 25, 38, 50, 62, 75, 88, 100, 112, 125]
    assert video.sample_indices(132, 25.0, target_fps=2.0, max_frames=4) == [0, 38, 88, 125]
    assert video.sample_indices(10, 25.0) == list(range(10))
    assert video.keyframe_positions(11, 4) == [0, 4, 8]


def test_probe_and_read_the_real_sample() -> None:
    meta = video.probe(SAMPLE)
    assert (meta.width, meta.height, meta.num_frames) == (1280, 720, 132)
    assert meta.fps == pytest.approx(25.0)
    frames = video.read_frames(SAMPLE, [30, 5, 30])
    assert frames.shape == (3, 720, 1280, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[0], frames[2])
    cap = cv2.VideoCapture(str(SAMPLE))
    for _ in range(6):
        _ok, bgr = cap.read()
    cap.release()
    assert np.array_equal(frames[1], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def test_frame_folder_is_a_video(tmp_path: Path) -> None:
    frames = video.read_frames(SAMPLE, [0, 1, 2])
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:05d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    meta = video.probe(tmp_path)
    assert (meta.width, meta.height, meta.num_frames) == (1280, 720, 3)
    assert np.array_equal(video.read_frames(tmp_path, [2, 0]), frames[[2, 0]])


def test_corrupt_file_names_the_file(clips: dict[str, Path]) -> None:
    with pytest.raises(video.VideoError, match=r"broken\.mp4"):
        video.probe(clips["broken"])


def two_shot_clip(path: Path) -> Path:
    """20 frames panning over one photo, then 20 panning over another: one hard cut at frame 20."""
    from skimage import data

    from tests.conftest import write_clip

    shots = [data.astronaut(), data.coffee()]
    frames = [shot[40 : 40 + 240, 4 * t : 4 * t + 320] for shot in shots for t in range(20)]
    return write_clip(path, np.stack(frames), fps=10.0)


def test_scene_cuts_become_keyframes(tmp_path: Path) -> None:
    from annotator.records import VideoItem
    from annotator.stages.ingest import IngestStage

    clip = two_shot_clip(tmp_path / "two_shots.mp4")
    diffs = video.frame_differences(clip, list(range(40)))
    assert diffs.shape == (39,) and int(np.argmax(diffs)) == 19
    assert diffs[19] > 0.2 > max(np.delete(diffs, 19)), "the cut stands out from the panning"
    (item,) = IngestStage(target_fps=None, keyframe_every=16, scene_cut_threshold=0.2).process(
        [VideoItem("v", str(clip))])
    assert item.error is None and item.info is not None
    assert item.info.scene_cuts == [20] and item.info.keyframes == [0, 16, 20, 32]
    (plain,) = IngestStage(target_fps=None, keyframe_every=16).process([VideoItem("v", str(clip))])
    assert plain.info is not None and (plain.info.keyframes, plain.info.scene_cuts) == ([0, 16, 32], [])
    sampled = IngestStage(target_fps=5.0, keyframe_every=100, scene_cut_threshold=0.2).process(
        [VideoItem("v", str(clip))])[0]
    assert sampled.info is not None and sampled.info.frame_indices[sampled.info.scene_cuts[0]] == 20
