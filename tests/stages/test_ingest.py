"""Ingest decodes what is there: a header that overstates the frames, frame folders with gaps and a bad image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator import frames
from annotator.records import VideoItem
from annotator.stages.ingest import IngestStage
from tests.test_inputs import clip


def test_a_header_that_overstates_the_frames_loses_only_the_missing_ones(tmp_path: Path) -> None:
    path = clip(tmp_path / "cut.avi", "mpeg4", "avi", frames=40, noise=True)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.55)])  # the AVI header still says 40 frames
    stage = IngestStage(target_fps=None, max_frames=None, keyframe_every=4)
    stage.bind(str(tmp_path / "run"))
    (item,) = stage.process([VideoItem("cut", str(path))])
    assert item.error is None, item.error
    info = item.info
    assert info is not None and info.header_frames == 40 and 5 < info.num_frames < 40
    assert info.frame_indices == list(range(info.num_frames)), "every frame that is there, and no other"
    assert item.counters["ingest.header_frames_missing"] == 40 - info.num_frames
    stored = frames.read(item, list(range(len(info.frame_indices))), str(tmp_path / "run"))
    assert stored.shape == (info.num_frames, 48, 64, 3)


def test_an_mp4_missing_its_last_frame_gives_every_other_frame(tmp_path: Path) -> None:
    from tests.test_input_zoo import last_frame_missing

    path = last_frame_missing(tmp_path / "cut.mp4", frames=12)
    (item,) = IngestStage(target_fps=None, max_frames=None).process([VideoItem("cut", str(path))])
    assert item.error is None, item.error
    assert item.info is not None and (item.info.header_frames, item.info.num_frames) == (12, 11)
    assert item.info.frame_indices == list(range(11))


def test_sampling_a_truncated_video_still_spans_what_is_there(tmp_path: Path) -> None:
    path = clip(tmp_path / "cut.avi", "mpeg4", "avi", frames=40, noise=True)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.55)])
    (item,) = IngestStage(target_fps=None, max_frames=5).process([VideoItem("cut", str(path))])
    assert item.error is None and item.info is not None
    assert len(item.info.frame_indices) == 5 and item.info.frame_indices[-1] == item.info.num_frames - 1


def test_min_frames_makes_too_short_a_video_an_error(tmp_path: Path) -> None:
    path = clip(tmp_path / "short.mp4", frames=3)
    (item,) = IngestStage(target_fps=None, min_frames=10).process([VideoItem("short", str(path))])
    assert item.error is not None and "3 frames decode, fewer than min_frames=10" in item.error.message


def test_frame_folder_keeps_its_own_frame_numbers_and_skips_a_corrupt_image(tmp_path: Path) -> None:
    folder = tmp_path / "shot"
    folder.mkdir()
    for n in (1, 2, 5):
        cv2.imwrite(str(folder / f"{n:05d}.jpg"), np.full((12, 16, 3), n * 40, np.uint8))
    (folder / "00007.jpg").write_bytes(b"not a jpeg")
    stage = IngestStage(target_fps=None, max_frames=None, keyframe_every=2)
    stage.bind(str(tmp_path / "run"))
    (item,) = stage.process([VideoItem("shot", str(folder))])
    assert item.error is None, item.error
    assert item.info is not None and item.info.frame_indices == [1, 2, 5], "source numbers, gap kept"
    assert item.counters == {"ingest.unreadable_frames": 1}
    got = frames.read(item, [2], str(tmp_path / "run"))[0]
    assert abs(int(got.mean()) - 200) <= 2, "position 2 is file 00005, not the third file renumbered"


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (2, 2), (3, 2), (5, 7)])
def test_tiny_frames_decode_or_are_refused_by_size(tmp_path: Path, size: tuple[int, int]) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    for n in range(3):
        cv2.imwrite(str(folder / f"{n:05d}.png"), np.full((*size, 3), 50 * n, np.uint8))
    (item,) = IngestStage(target_fps=None).process([VideoItem("tiny", str(folder))])
    if min(size) < 2:  # the models cannot take a 1-pixel side: refused here, with the size, not later in track
        assert item.error is not None and item.error.stage == "ingest"
        assert f"frame {size[1]}x{size[0]} is smaller than 2x2 pixels" in item.error.message
        return
    assert item.error is None and item.info is not None
    assert (item.info.height, item.info.width) == size and item.info.frame_indices == [0, 1, 2]
