from __future__ import annotations

import pytest

from annotator.models.phrase_llm import LLMPhraser, MalformedReply
from annotator.models.phrase_vocabulary import VocabularyPhraser
from annotator.models.spans import keep_non_overlapping, normalise


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


class ScriptedClient:
    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[list[dict]] = []

    def complete(self, messages: list[dict], extra: dict | None = None) -> str:
        self.calls.append(list(messages))
        assert extra and extra["response_format"]["type"] == "json_schema"
        return self.replies.pop(0)


def test_llm_malformed_json_gets_one_repair_request() -> None:
    caption = "a rabbit watches a butterfly"
    client = ScriptedClient(['{"phrases": [{"text": "a rabbit"', '{"phrases": [{"text": "a butterfly", "start": 3}]}'])
    phrases, _ = LLMPhraser(client).extract(caption)  # type: ignore[arg-type]
    assert [(p.text, p.start, p.end) for p in phrases] == [("a butterfly", 17, 28)]
    assert len(client.calls) == 2 and "not valid JSON" in client.calls[1][-1]["content"]


def test_llm_malformed_twice_raises() -> None:
    client = ScriptedClient(["nope", "still nope"])
    with pytest.raises(MalformedReply):
        LLMPhraser(client).extract("a rabbit")  # type: ignore[arg-type]
