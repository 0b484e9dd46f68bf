from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.phrases.spans import keep_non_overlapping, normalise
from annotator.phrases.vocabulary import VocabularyPhraser
from annotator.records import VideoItem
from annotator.stages.phrases import PhrasesStage
from annotator.testing.fake_server import FakeServer


def test_vocabulary_spans_are_exact_and_longest_first() -> None:
    caption = "A man holds a cup near the dining table; the cups and a hot dog. A cup again."
    phrases, dropped = VocabularyPhraser().extract(caption)
    assert [p.text for p in phrases] == ["a cup", "the dining table", "the cups", "a hot dog"]  # not "a dog"
    for p in phrases:
        assert caption[p.start : p.end] == p.text
    assert [p.norm for p in phrases] == ["cup", "dining table", "cups", "hot dog"]
    assert [(d.text, d.reason) for d in dropped] == [("A cup", "repeats an earlier phrase")]


def test_custom_categories_and_cap() -> None:
    phrases, dropped = VocabularyPhraser(["rabbit", "tree"], max_phrases=1).extract("trees behind a rabbit")
    assert [(p.text, p.norm) for p in phrases] == [("trees", "trees")]
    assert [(d.text, d.reason) for d in dropped] == [("a rabbit", "beyond max_phrases=1")]


def test_wrong_offsets_are_repaired_or_dropped() -> None:
    caption = "a dog, a dog and a ball"
    kept, dropped = keep_non_overlapping(
        caption, [("a ball", 0, 6), ("a dog", 7, 12), ("a cat", 0, 5), ("dog and", 9, 16)]
    )
    assert [(p.text, p.start, p.end) for p in kept] == [("a dog", 7, 12), ("a ball", 17, 23)]
    assert all(caption[p.start : p.end] == p.text for p in kept)
    reasons = {d.text: d.reason for d in dropped}
    assert reasons == {"a cat": "not a substring of the caption", "dog and": "overlaps an earlier phrase"}


def test_normalise_for_the_detector() -> None:
    assert normalise("The  Big Rabbit.") == "big rabbit"
    assert normalise("an apple") == "apple"
    assert normalise("these") == "these"


def llm_stage(url: str, **params: object) -> PhrasesStage:
    stage = PhrasesStage(backend="llm", endpoint=url, model="served-llm", max_retries=0, **params)  # type: ignore[arg-type]
    stage.setup()
    return stage


def test_llm_malformed_json_gets_one_repair_request_against_a_live_server() -> None:
    caption = "a rabbit watches a butterfly"
    truncated = '{"phrases": [{"text": "a rabbit"'
    valid = json.dumps({"phrases": [{"text": "a butterfly", "start": 3, "end": 14}, {"text": "a rabbit"}]})
    with FakeServer([truncated, valid]) as server:
        (item,) = llm_stage(server.url).process([VideoItem("v", "/v.mp4", caption=caption)])
    assert item.error is None
    assert [(p.text, p.start, p.end, p.norm) for p in item.phrases] == [
        ("a rabbit", 0, 8, "rabbit"), ("a butterfly", 17, 28, "butterfly")]  # wrong offsets repaired by search
    first, repair = (r["body"] for r in server.requests)
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"]["required"] == ["phrases"]
    assert caption in first["messages"][0]["content"] and "{caption}" not in first["messages"][0]["content"]
    assert repair["messages"][1] == {"role": "assistant", "content": truncated}
    assert "not valid JSON" in repair["messages"][2]["content"]


def test_llm_malformed_twice_is_an_item_error_not_a_crash() -> None:
    items = [VideoItem("v", "/v.mp4", caption="a rabbit"), VideoItem("w", "/w.mp4", caption="a dog")]
    valid = '{"phrases": [{"text": "a dog"}, {"text": "a rabbit"}]}'
    with FakeServer(["nope", '{"phrases": 3}', "still nope"], content=valid) as server:
        out = llm_stage(server.url, max_phrases=None).process(items)
    failed = [it for it in out if it.error is not None]
    assert len(failed) == 1 and failed[0].error.error_type == "MalformedReply" and failed[0].phrases == []
    (good,) = [it for it in out if it.error is None]
    assert [p.text for p in good.phrases] == [good.caption]  # repaired on its second request
    assert len(server.requests) == 4
    for it in out:
        assert set(it.counters) == {"phrases.requests", f"phrases.requests@{server.url}", "phrases.output_tokens"}
        assert it.counters["phrases.requests"] == it.counters[f"phrases.requests@{server.url}"] == 2
    # the fake server's usage is its answer's words: "nope", '{"phrases": 3}', "still nope", then `valid`
    assert sum(it.counters["phrases.output_tokens"] for it in out) == 1 + 2 + 2 + len(valid.split())


def test_llm_requests_of_a_batch_are_in_flight_together() -> None:
    captions = [f"a dog and a cat number {i}" for i in range(24)]
    items = [VideoItem(f"v{i}", f"/v{i}.mp4", caption=c) for i, c in enumerate(captions)]
    reply = '{"phrases": [{"text": "a dog", "start": 0, "end": 5}, {"text": "a cat", "start": 10, "end": 15}]}'
    with FakeServer(content=reply, latency_s=0.2) as server:
        out = llm_stage(server.url, max_concurrency=8).process(items)
    assert all(it.error is None and [p.norm for p in it.phrases] == ["dog", "cat"] for it in out)
    assert 4 <= server.max_in_flight <= 8 and len(server.requests) == 24


def test_llm_prompt_template_must_have_a_caption_slot(tmp_path: Path) -> None:
    template = tmp_path / "phrases.v2.md"
    template.write_text("List the nouns.")
    with FakeServer() as server, pytest.raises(ValueError, match="caption"):
        llm_stage(server.url, prompt=str(template))
