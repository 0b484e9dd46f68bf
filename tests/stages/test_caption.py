"""The caption stage with a served endpoint: good answers become captions, a dead endpoint item errors."""

from __future__ import annotations

from pathlib import Path

from annotator.records import VideoItem
from annotator.stages.caption import CaptionStage
from annotator.stages.ingest import IngestStage
from tests.fake_openai import FakeServer


def ingested(clips: dict[str, Path]) -> list[VideoItem]:
    items = [VideoItem(video_id=k, path=str(clips[k])) for k in ("a", "b")]
    return IngestStage(target_fps=8, max_frames=6).process(items)


def test_served_captions_land_on_items(clips: dict[str, Path]) -> None:
    server = FakeServer([429])
    try:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="served-vlm", num_frames=4,
                             max_concurrency=2)
        stage.setup()
        out = stage.process(ingested(clips))
    finally:
        server.close()
    assert [it.caption for it in out] == ["a rabbit sits on the grass"] * 2
    assert all(it.error is None and it.caption_model == "served-vlm" for it in out)
    assert len(server.requests) == 3  # one 429 retried
    images = [p for p in server.requests[-1]["body"]["messages"][0]["content"] if p["type"] == "image_url"]
    assert len(images) == 4


def test_endpoint_down_turns_items_into_errors(clips: dict[str, Path]) -> None:
    server = FakeServer([503] * 10)
    try:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="m", max_retries=1, max_concurrency=2)
        stage.setup()
        out = stage.process(ingested(clips))
    finally:
        server.close()
    assert all(it.caption is None and it.error is not None for it in out)
    assert {(it.error.stage, it.error.error_type) for it in out} == {("caption", "EndpointError")}
    assert all(server.url in it.error.message and "HTTP 503" in it.error.message for it in out)
