"""Click-to-fix uses the pipeline's own tracker: SAM2 for `track`, SAM 3's tracker for `segment` pipelines."""

from __future__ import annotations

import pytest

from annotator import masks
from annotator.records import VideoInfo, VideoItem
from annotator.review.tracker import MaskFixer
from tests.conftest import SAMPLE


@pytest.mark.parametrize(("stage", "role", "family"), [("track", "sam2_video", "Sam2VideoModel"),
                                                        ("segment", "sam3_video", "Sam3TrackerVideoModel")])
def test_two_clicks_become_a_mask_track_with_the_pipelines_tracker(tiny_models: dict[str, str], stage: str,
                                                                  role: str, family: str) -> None:
    fixer = MaskFixer({"pipeline": {"stages": [{"stage": stage, "params": {"model": tiny_models[role]}}]}})
    assert type(fixer.tracker().model).__name__ == family
    info = VideoInfo(width=1280, height=720, fps=24.0, num_frames=132, frame_indices=[0, 10, 20, 30],
                     keyframes=[0])
    item = VideoItem("s", str(SAMPLE), info=info)
    draft = fixer.fix(item, None, 5, 1, [(400.0, 300.0, 1), (1200.0, 50.0, 0)])
    assert len(draft["frames"]) == len(draft["rles"]) == len(draft["scores"]) and set(draft["frames"]) <= {0, 1, 2, 3}
    for rle in draft["rles"]:
        assert masks.decode(rle, 720, 1280).any()
