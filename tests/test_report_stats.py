"""The report's figures hold what they draw: histograms as value -> count, and the first rows of each listing
with the count of all of them, however many masks and drops the run has."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from annotator import masks
from annotator.records import DroppedObject, LinkedObject, MaskTrack, Phrase, VideoInfo, VideoItem
from annotator.report.render import render
from annotator.report.stats import LISTED, compute

VIDEOS, H, W = 250, 20, 40


def item(i: int) -> VideoItem:
    frames = np.zeros((2, H, W), dtype=bool)
    frames[0, :2, :] = True  # 80 of 800 pixels: 0.1 of the frame
    frames[1, :5, :] = True  # 0.25
    info = VideoInfo(width=W, height=H, fps=10.0, num_frames=20, frame_indices=[0, 10], keyframes=[0])
    return VideoItem(f"v{i:03d}", f"/v{i:03d}.mp4", info=info, caption="a cat",
                     phrases=[Phrase("a cat", 0, 5, "cat")],
                     objects=[LinkedObject(1, 0, [1], MaskTrack([0, 1], masks.encode_batch(frames), [0.9, 0.9]))],
                     dropped_objects=[DroppedObject(2, "a cat", "min_area 0.001 < 0.002")])


def test_histograms_count_values_and_listings_keep_the_first_rows() -> None:
    stats = compute((item(i) for i in range(VIDEOS)), 3, Counter({"ingest: VideoError": 3}))
    assert (stats.videos, stats.objects, stats.masks, stats.errors) == (VIDEOS, VIDEOS, 2 * VIDEOS, 3)
    assert stats.objects_per_video == Counter({1: VIDEOS}) and stats.track_lengths == Counter({2: VIDEOS})
    assert sorted(stats.mask_areas) == pytest.approx([0.1, 0.25]) and set(stats.mask_areas.values()) == {VIDEOS}
    assert stats.dropped_count == VIDEOS and len(stats.dropped_objects) == LISTED
    assert stats.dropped_objects[0] == ("v000", 2, "a cat", "min_area 0.001 < 0.002")
    assert stats.drop_reasons == Counter({"object: min_area": VIDEOS})
    page = render(stats, [], [], "report")
    assert f"{VIDEOS} objects dropped:" in page and f"and {VIDEOS - LISTED} more" in page
    assert page.count("v199 object 2") == 1 and "v200 object 2" not in page
