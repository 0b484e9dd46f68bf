"""Click-to-fix: the clicks decide the mask. With the oracle tracker on a synthetic clip of known objects, a
positive click inside an object and a negative one outside give exactly that object's masks on every frame it
is visible; with the pipeline's real tiny trackers the draft has the right shapes and frames, and a negative
click removes pixels around it."""

from __future__ import annotations

import numpy as np
import pytest

from annotator import masks
from annotator.records import VideoInfo, VideoItem
from annotator.review.tracker import MaskFixer
from annotator.testing.oracle_tracker import OracleTracker
from tests import synthetic
from tests.conftest import SAMPLE

FRAMES = 40  # the scene has an object leaving and coming back


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoItem, dict[int, np.ndarray]]:
    video, truth, _ = synthetic.render(FRAMES)
    path = synthetic.write_video(tmp_path_factory.mktemp("scene") / "scene.mp4", video)
    info = VideoInfo(width=synthetic.W, height=synthetic.H, fps=10.0, num_frames=FRAMES,
                     frame_indices=list(range(FRAMES)), keyframes=[0])
    return VideoItem("scene", str(path), info=info), truth


def inside(mask: np.ndarray) -> tuple[float, float]:
    """A pixel well inside the mask (the one farthest from its border), as (x, y)."""
    import cv2

    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(np.argmax(distance), distance.shape)
    return float(x), float(y)


def drafted(draft: dict, h: int, w: int) -> dict[int, np.ndarray]:
    assert len(draft["frames"]) == len(draft["rles"]) == len(draft["scores"])
    return {f: masks.decode(r, h, w) for f, r in zip(draft["frames"], draft["rles"], strict=True)}


def test_clicks_give_the_masks_they_imply(scene: tuple[VideoItem, dict[int, np.ndarray]]) -> None:
    item, truth = scene
    fixer = MaskFixer({"pipeline": {"stages": []}}, tracker=OracleTracker(truth))
    visible = {g: [t for t in range(FRAMES) if m[t].any()] for g, m in truth.items()}
    first, second = sorted(truth, key=lambda g: -len(visible[g]))[:2]
    frame = next(t for t in visible[first] if t in visible[second] and 0 < t < FRAMES - 1)
    yes, no = inside(truth[first][frame]), inside(truth[second][frame])
    got = drafted(fixer.fix(item, None, 5, frame, [(*yes, 1), (*no, 0)]), synthetic.H, synthetic.W)
    assert sorted(got) == visible[first], "forward and backward from the clicked frame, every visible frame"
    for t, mask in got.items():
        assert np.array_equal(mask, truth[first][t]), t
    other = drafted(fixer.fix(item, None, 5, frame, [(*no, 1), (*yes, 0)]), synthetic.H, synthetic.W)
    assert sorted(other) == visible[second] and all(np.array_equal(m, truth[second][t]) for t, m in other.items())
    contradicting = fixer.fix(item, None, 5, frame, [(*yes, 1), (*yes, 0)])
    assert contradicting["frames"] == [] == contradicting["rles"], "no object holds a click and its negation"


@pytest.mark.parametrize(("stage", "role", "family"), [("track", "sam2_video", "Sam2VideoModel"),
                                                        ("segment", "sam3_video", "Sam3TrackerVideoModel")])
def test_the_pipelines_tracker_takes_the_clicks(tiny_models: dict[str, str], stage: str, role: str,
                                               family: str) -> None:
    """Random weights give no click semantics (measured: the tiny SAM2's clicked frame comes out empty wherever
    the click is), so this checks the plumbing: the pipeline's own model, masks of the frame's size on the
    sampled frames only, and the clicked frame deciding where propagation starts."""
    fixer = MaskFixer({"pipeline": {"stages": [{"stage": stage, "params": {"model": tiny_models[role]}}]}})
    assert type(fixer.tracker().model).__name__ == family
    info = VideoInfo(width=1280, height=720, fps=24.0, num_frames=132, frame_indices=[0, 10, 20, 30],
                     keyframes=[0])
    item = VideoItem("s", str(SAMPLE), info=info)
    clicks = [(400.0, 300.0, 1), (1200.0, 50.0, 0)]
    on_first = drafted(fixer.fix(item, None, 5, 0, clicks), 720, 1280)
    on_second = drafted(fixer.fix(item, None, 5, 1, clicks), 720, 1280)
    for got in (on_first, on_second):
        assert got and set(got) <= {0, 1, 2, 3}
        assert all(m.shape == (720, 1280) and m.any() for m in got.values()), "only frames with a mask are kept"
    assert any(f not in on_second or not np.array_equal(m, on_second[f]) for f, m in on_first.items()), \
        "the clicked frame is where the tracker is prompted"
