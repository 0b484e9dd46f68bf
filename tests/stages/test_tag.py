"""The tag stage: a served LLM's tagged caption becomes the item's phrases, a broken one gets one repair request
naming the problem, then an item error; the in-process backend sees the frames."""

from __future__ import annotations

import copy

import pytest

from annotator import paths
from annotator.records import VideoItem
from annotator.sources import read_source
from annotator.stages.tag import TagStage
from annotator.testing.fake_server import FakeServer

SAMPLE = paths.PROJECT_ROOT / "datasets" / "ytvis_sample"


@pytest.fixture
def record() -> VideoItem:
    (item,) = read_source("ytvis", str(SAMPLE / "annotations.json"), str(SAMPLE / "JPEGImages")).values()
    return copy.deepcopy(item)


def test_a_bad_tag_gets_one_repair_then_the_caption_lands(record: VideoItem) -> None:
    with FakeServer(["[a rabbit](99) hops.", "Here [a white rabbit](1) hops on the grass."]) as server:
        stage = TagStage(endpoint=server.url, backoff_s=0.01)
        stage.setup()
        (item,) = stage.process([record])
        repair = server.requests[1]["body"]["messages"]
    assert item.error is None and item.caption == "Here a white rabbit hops on the grass."
    assert [(p.text, p.start) for p in item.phrases] == [("a white rabbit", 5)] and item.objects[0].phrase == 0
    assert "1: rabbit" in repair[0]["content"] and repair[1]["content"] == "[a rabbit](99) hops."
    assert "id 99 is not one of the objects [1]" in repair[2]["content"]


def test_two_bad_replies_are_an_item_error(record: VideoItem) -> None:
    with FakeServer(["[x](7) a.", "[[a rabbit](1)](1) b."]) as server:
        stage = TagStage(endpoint=server.url, backoff_s=0.01)
        stage.setup()
        (item,) = stage.process([record])
    assert item.error is not None and item.error.error_type == "TaggingError"
    assert "nested tags are not allowed" in item.error.message


def test_in_process_backend_sees_the_frames(record: VideoItem, tiny_models) -> None:
    stage = TagStage(backend="local", model=tiny_models["qwen2_vl"], max_new_tokens=12, num_frames=2)
    stage.setup()
    seen = []
    caption = stage._local.caption
    stage._local.caption = lambda requests: seen.extend(requests) or caption(requests)
    (item,) = stage.process([record])
    assert [r.frames.shape for r in seen] == [(2, 180, 320, 3)] * 2, "asked, then repaired, with two frames each"
    assert "1: rabbit" in seen[0].prompt and "That does not work" in seen[1].prompt
    assert item.error is not None and item.error.error_type == "TaggingError", "random weights write no tags"
