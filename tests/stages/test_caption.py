"""The caption stage with a served endpoint: good answers become captions, a dead endpoint item errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator import prompts
from annotator.records import VideoItem
from annotator.stages.caption import CaptionStage
from annotator.stages.ingest import IngestStage
from annotator.testing.fake_server import FakeServer, Fault


def ingested(clips: dict[str, Path]) -> list[VideoItem]:
    items = [VideoItem(video_id=k, path=str(clips[k])) for k in ("a", "b")]
    return IngestStage(target_fps=8, max_frames=6).process(items)


def test_served_captions_land_on_items(clips: dict[str, Path]) -> None:
    with FakeServer([429]) as server:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="served-vlm", num_frames=4,
                             max_concurrency=2)
        stage.setup()
        out = stage.process(ingested(clips))
    assert [it.caption for it in out] == ["a rabbit sits on the grass"] * 2
    assert all(it.error is None and it.caption_model == "served-vlm" for it in out)
    assert len(server.requests) == 3  # one 429 retried
    images = [p for p in server.requests[-1]["body"]["messages"][0]["content"] if p["type"] == "image_url"]
    assert len(images) == 4


def test_served_captions_send_the_frame_stores_jpeg_bytes_as_they_are(clips: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    import base64

    from annotator import frames, storage

    ingest = IngestStage(target_fps=8, max_frames=6)
    ingest.bind(str(tmp_path))
    items = ingest.process([VideoItem(video_id="a", path=str(clips["a"]))])
    assert items[0].info is not None and items[0].info.stored_frames
    with FakeServer() as server:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="m", num_frames=3, image_max_side=448)
        stage.bind(str(tmp_path))
        stage.setup()
        (item,) = stage.process(items)
    assert item.error is None
    sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
            for p in server.requests[-1]["body"]["messages"][0]["content"] if p["type"] == "image_url"]
    info = item.info
    stored = [storage.read_bytes(frames.frame_path(str(tmp_path), "a", info.frame_indices[p])) for p in (0, 2, 5)]
    assert sent == stored, "320x180 frames fit 448: the stored bytes go out untouched"


def test_endpoint_down_turns_items_into_errors(clips: dict[str, Path]) -> None:
    with FakeServer([503] * 10) as server:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="m", max_retries=1, max_concurrency=2)
        stage.setup()
        out = stage.process(ingested(clips))
    assert all(it.caption is None and it.error is not None for it in out)
    assert {(it.error.stage, it.error.error_type) for it in out} == {("caption", "EndpointError")}
    assert all(server.url in it.error.message and "HTTP 503" in it.error.message for it in out)


def test_concurrency_is_bounded_and_every_request_completes() -> None:
    from annotator.models.vlm_openai import OpenAIChatClient

    with FakeServer(latency_s=0.05) as server:
        client = OpenAIChatClient(server.url, "m", max_concurrency=16)
        replies = client.run([lambda i=i: [{"role": "user", "content": f"q{i}"}] for i in range(200)])
    assert [r.text for r in replies] == ["a rabbit sits on the grass"] * 200
    assert len(server.requests) == 200 and client.counters["requests"] == 200
    assert 8 <= server.max_in_flight <= 16


def test_retries_and_timeouts_are_counted_and_budget_enforced() -> None:
    from annotator.models.vlm_openai import EndpointError, OpenAIChatClient

    with FakeServer([429, 503, Fault("slow")], slow_s=1.0) as server:
        client = OpenAIChatClient(server.url, "m", max_concurrency=1, backoff_s=0.01, timeout_s=0.3)
        (reply,) = client.run([lambda: [{"role": "user", "content": "q"}]])
        assert reply.text == "a rabbit sits on the grass"
        assert dict(reply.counters) == {"requests": 4, "retries": 3, "http_429": 1, "http_503": 1, "timeouts": 1,
                                        f"requests@{server.url}": 4, f"faults@{server.url}": 1,  # the 503
                                        "output_tokens": 6}  # the fake server's usage: words of its answer
        budget = OpenAIChatClient(server.url, "m", max_requests=2)
        replies = budget.run([lambda: [{"role": "user", "content": "q"}]] * 3)
    assert [r.text for r in replies[:2]] == ["a rabbit sits on the grass"] * 2
    assert isinstance(replies[2].error, EndpointError) and "budget of 2" in str(replies[2].error)


def test_free_form_qa_prompt_gives_question_and_grounded_text(clips: dict[str, Path]) -> None:
    answer = json.dumps({"question": "What is the rabbit doing?", "answer": "A rabbit sits on the grass."})
    with FakeServer([answer, "a plain caption, not JSON"]) as server:
        stage = CaptionStage(backend="openai", endpoint=server.url, model="m", prompt="prompts/qa.v1.md",
                             reply="qa", max_concurrency=1)
        stage.setup()
        out = stage.process(ingested(clips))
    good, bad = sorted(out, key=lambda it: it.error is not None)  # which item got which answer is up to the threads
    assert (good.question, good.caption, good.error) == ("What is the rabbit doing?", "A rabbit sits on the grass.",
                                                        None)
    assert bad.caption is None and bad.error is not None and bad.error.error_type == "MalformedReply"
    body = server.requests[0]["body"]
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["question", "answer"]
    assert body["messages"][0]["content"][-1]["text"] == prompts.load("prompts/qa.v1.md").text
    assert stage.cache_inputs()["prompt"]["name"] == "qa"


def test_unversioned_prompt_file_is_refused() -> None:
    with pytest.raises(ValueError, match="versioned"):
        CaptionStage(prompt="prompts/my_caption.md")
