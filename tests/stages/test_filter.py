"""The filter stage: each check on a hand-built item whose keep/reason is known; filtered items are settled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator import masks
from annotator.executors.local import LocalExecutor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.records import LinkedObject, MaskTrack, Phrase, VideoInfo, VideoItem
from annotator.rundir import RunDir
from annotator.stages.filter import FilterStage
from annotator.testing.fake_stages import fake_stages

H, W, T = 20, 30, 4


def box(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def item(*stacks: list[np.ndarray], caption: str = "a cat and a dog and a cup") -> VideoItem:
    """Objects 1, 2, ... from the given mask stacks; object 1 scores 0.9, the others 0.99."""
    phrases = [Phrase("a cat", 0, 5, "cat"), Phrase("a dog", 10, 15, "dog"), Phrase("a cup", 20, 25, "cup")]
    objects = [LinkedObject(i + 1, i, [i + 1], MaskTrack(list(range(len(s))), masks.encode_batch(np.stack(s)),
                                                          [0.99 if i else 0.9] * len(s))) for i, s in enumerate(stacks)]
    info = VideoInfo(width=W, height=H, fps=10.0, num_frames=T, frame_indices=list(range(T)), keyframes=[0])
    return VideoItem("v", "/v.mp4", info=info, caption=caption, phrases=phrases[: len(stacks)], objects=objects)


STEADY = [box(5, 5, 10, 10)] * T  # 25 px of 600 every frame
CASES = [
    ({"min_area_fraction": 0.05}, [STEADY], "mask area 0.0417 of the frame < min_area_fraction 0.05"),
    ({"max_area_fraction": 0.5}, [[box(0, 0, 20, 20)] * T], "mask area 0.6667 of the frame > max_area_fraction 0.5"),
    ({"max_area_flicker": 0.5}, [[box(5, 5, 10, 10), box(5, 5, 6, 6)] * 2], "area changes by 0.96 between frames"),
    ({"min_visible_fraction": 0.75}, [[box(5, 5, 10, 10), np.zeros((H, W), bool)] * 2], "visible on 0.50 of"),
    ({"min_track_frames": 3}, [[box(5, 5, 10, 10), np.zeros((H, W), bool)] * 2], "visible on 2 frames < min_track"),
    ({"min_mean_score": 0.95}, [STEADY], "mean score 0.900 < min_mean_score 0.95"),
    ({"drop_border_everywhere": True}, [[box(0, 3, 6, 8)] * T], "mask touches the frame border on every frame"),
    ({"min_area_fraction": 0.01}, [STEADY], None),
    ({"drop_border_everywhere": True}, [[box(0, 3, 6, 8), box(4, 4, 8, 8)] * 2], None),
]


@pytest.mark.parametrize(("params", "stacks", "reason"), CASES)
def test_object_checks(params: dict, stacks: list, reason: str | None) -> None:
    extra = [box(2, 20, 8, 26)] * T  # a second, clean object keeps the item grounded
    (out,) = FilterStage(**params).process([item(*stacks, extra)])
    assert out.error is None and out.hold is None
    if reason is None:
        assert [o.object_id for o in out.objects] == [1, 2] and not out.dropped_objects
    else:
        assert [o.object_id for o in out.objects] == [2]
        (dropped,) = out.dropped_objects
        assert (dropped.object_id, dropped.phrase) == (1, "a cat") and dropped.reason.startswith(reason)


def test_duplicates_keep_the_first() -> None:
    (out,) = FilterStage(max_duplicate_iou=0.8).process([item(STEADY, [box(5, 5, 10, 11)] * T)])
    assert [o.object_id for o in out.objects] == [1]
    assert out.dropped_objects[0].reason.startswith("duplicate of object 1 (mean mask IoU 0.83")


@pytest.mark.parametrize(("params", "reason"), [
    ({"min_grounded": 2}, "1 grounded phrases < min_grounded 2"),
    ({"min_area_fraction": 0.05}, "0 grounded phrases < min_grounded 1"),
    ({"min_caption_chars": 30}, "caption of 25 characters < min_caption_chars 30"),
    ({"max_caption_chars": 10}, "caption of 25 characters > max_caption_chars 10"),
    ({}, None),
])
def test_item_checks(params: dict, reason: str | None) -> None:
    (out,) = FilterStage(**params).process([item(STEADY)])
    assert out.error is None
    assert (out.hold.reason if out.hold else None) == reason
    assert out.state == ("filtered" if reason else "ok")


def test_ungrounded_share() -> None:
    (out,) = FilterStage(max_ungrounded_share=0.4, min_mean_score=0.999).process(
        [item(STEADY, [box(2, 20, 8, 26)] * T)])
    assert out.hold is not None and out.hold.reason == "0 grounded phrases < min_grounded 1"
    (out,) = FilterStage(max_ungrounded_share=0.4, min_mean_score=0.95).process(
        [item(STEADY, [box(2, 20, 8, 26)] * T)])
    assert out.hold is not None and out.hold.reason.startswith("0.50 of the phrases ungrounded")
    assert [o.object_id for o in out.objects] == [2] and out.dropped_objects[0].object_id == 1


def test_filtered_items_are_settled_and_never_exported(tmp_path: Path) -> None:
    stages = [*fake_stages(caption_s=0, detect_s=0, track_s=0)[:-1], FilterStage(min_grounded=4),
              fake_stages()[-1]]
    export = ExportSpec("t", "r", {})
    tasks = [StageTask(s, f"fp-{s.name}", str(tmp_path), 1, 4, 1.0, 0.0,
                       export=export if i == len(stages) - 1 else None) for i, s in enumerate(stages)]
    rows = list(LocalExecutor(show_progress=False).run(tasks, [WorkRef("v1", "/v1.mp4"), WorkRef("v2", "/v2.mp4")]))
    assert {(r["status"], r["stage"], r["reason"]) for r in rows} == {
        ("filtered", "filter", "3 grounded phrases < min_grounded 4")}
    run = RunDir(str(tmp_path))
    assert {r["status"] for r in run.latest("filter", "fp-filter").values()} == {"filtered"}
    assert not run.latest("assemble", "fp-assemble"), "later stages never saw them"
    assert not run.export_parts("qa")
    settled_ok, filtered = run.settled([(s.name, f"fp-{s.name}") for s in stages])
    assert set(filtered) == {"v1", "v2"} and all(len(v) == 6 for v in settled_ok.values())
