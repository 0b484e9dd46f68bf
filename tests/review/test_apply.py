"""Decisions applied to a hand-built item: spans stay exact, merges union pixels, caption edits keep links."""

from __future__ import annotations

import numpy as np
import pytest

from annotator import masks
from annotator.records import LinkedObject, MaskTrack, Phrase, VideoInfo, VideoItem
from annotator.review.apply import DecisionError, apply, check_caption, tagged_caption
from annotator.review.store import Decision

H, W = 6, 8


def track(*boxes: tuple[int, int, int, int]) -> MaskTrack:
    stack = np.zeros((len(boxes), H, W), bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        stack[i, y0:y1, x0:x1] = True
    return MaskTrack(frames=list(range(len(boxes))), rles=masks.encode_batch(stack), scores=[0.5] * len(boxes))


def item() -> VideoItem:
    caption = "a man holds a cup near a dog"
    phrases = [Phrase("a man", 0, 5, "man"), Phrase("a cup", 12, 17, "cup"), Phrase("a dog", 23, 28, "dog")]
    objects = [LinkedObject(1, 0, [1], track((0, 0, 2, 2), (0, 0, 2, 2))),
               LinkedObject(2, 1, [2], track((3, 3, 5, 5), (3, 3, 5, 5))),
               LinkedObject(3, 2, [3], track((0, 6, 2, 8), (4, 6, 6, 8)))]
    info = VideoInfo(width=W, height=H, fps=1.0, num_frames=2, frame_indices=[0, 1], keyframes=[0])
    return VideoItem("v", "/v.mp4", info=info, caption=caption, phrases=phrases, objects=objects)


def spans_hold(it: VideoItem) -> None:
    assert all(it.caption[p.start:p.end] == p.text for p in it.phrases)


def test_rename_shifts_later_spans_and_changes_the_category() -> None:
    it = item()
    apply(it, [Decision("v", "rename", "ann", 1, {"text": "a tall man"}, id=1), Decision("v", "accept", "ann", id=2)])
    assert it.caption == "a tall man holds a cup near a dog"
    spans_hold(it)
    assert it.phrases[0].norm == "tall man"
    assert [o.provenance for o in it.objects] == ["edited", "reviewed", "reviewed"]


def test_merge_unions_pixels_and_drop_keeps_the_words() -> None:
    it = item()
    apply(it, [Decision("v", "merge", "ann", 3, {"into": 1}, id=1), Decision("v", "drop", "ann", 2, reason="x", id=2)])
    assert [o.object_id for o in it.objects] == [1] and it.objects[0].track_ids == [1, 3]
    merged = masks.decode_batch(it.objects[0].masks.rles, H, W)
    assert merged[0].sum() == 8 and merged[1].sum() == 8 and merged[1, 4:6, 6:8].all()
    assert [(d.object_id, d.reason) for d in it.dropped_objects] == [
        (3, "merged into object 1 by ann"), (2, "dropped by ann: x")]


def test_caption_edit_re_anchors_every_object_and_is_validated() -> None:
    it = item()
    assert tagged_caption(it) == "[a man](1) holds [a cup](2) near [a dog](3)"
    apply(it, [Decision("v", "caption", "ann", None, {"text": "[A dog](3) sniffs [the cup](2) of [a man](1)"}, id=1)])
    assert it.caption == "A dog sniffs the cup of a man"
    spans_hold(it)
    assert {o.object_id: it.phrases[o.phrase].text for o in it.objects} == {1: "a man", 2: "the cup", 3: "A dog"}
    for bad, words in [("[a man](1) holds [a cup](2)", "no longer tags objects [3]"),
                       ("[a man](1) [a cup](2) [a dog](3) [a cat](7)", "unknown object ids [7]"),
                       ("[a man](1) [a cup](1) [a dog](3) [x](2)", "tagged more than once")]:
        with pytest.raises(DecisionError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_caption(item(), bad)


def test_a_fixed_mask_replaces_the_trackers_exactly_and_reject_filters() -> None:
    it = item()
    fixed = track((1, 1, 4, 4))
    apply(it, [Decision("v", "fix_mask", "ann", 2, {"frames": [1], "rles": fixed.rles, "scores": [1.0]}, id=1),
               Decision("v", "reject", "bob", reason="wrong video", id=2)])
    assert it.objects[1].masks.frames == [1] and it.objects[1].masks.rles == fixed.rles
    assert it.objects[1].provenance == "fixed"
    assert it.hold is not None and (it.hold.state, it.hold.reason) == ("filtered", "rejected by bob: wrong video")
    with pytest.raises(DecisionError, match="frames the item does not have"):
        apply(item(), [Decision("v", "fix_mask", "ann", 2, {"frames": [5], "rles": fixed.rles}, id=1)])
