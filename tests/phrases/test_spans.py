"""Phrase spans under hostile input: repeated words, punctuation, unicode, and an LLM that miscounts offsets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator.phrases.llm import parse_reply
from annotator.phrases.spans import fix_span, keep_non_overlapping, normalise

WORDS = ["a", "the", "dog", "dog", "cat", "Café", "naïve", "über", "日本の", "猫", "🐇", "rabbit's", "e\u0301", "ß",
         "A", "The", "red", "ball", "İstanbul", "ﬁsh"]
SEPARATORS = [" ", " ", ", ", "; ", " - ", "! ", "? ", "… ", "\u00a0", " (", ") "]


@st.composite
def caption_and_candidates(draw: st.DrawFn) -> tuple[str, list[tuple[str, int | None, int | None]]]:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    caption = "".join(w + s for w, s in zip(words, seps, strict=True)).strip()
    bounds = sorted({0, len(caption), *(i for i, ch in enumerate(caption) if ch in " ,;!?()")})
    candidates: list[tuple[str, int | None, int | None]] = []
    for _ in range(draw(st.integers(0, 12))):
        i = draw(st.integers(0, len(bounds) - 2))
        j = draw(st.integers(i + 1, len(bounds) - 1))
        start, end = bounds[i], bounds[j]
        text = caption[start:end]
        lie = draw(st.sampled_from(["exact", "shifted", "missing", "swapped", "foreign"]))
        if lie == "shifted":  # the usual LLM mistake: offsets off by a few characters
            delta = draw(st.integers(-6, 6))
            candidates.append((text, start + delta, end + delta))
        elif lie == "missing":
            candidates.append((text, None, None))
        elif lie == "swapped":
            candidates.append((text, end, start))
        elif lie == "foreign":  # a paraphrase, not in the caption
            candidates.append((text + " zebra", start, end))
        else:
            candidates.append((text, start, end))
    return caption, candidates


@settings(max_examples=300, deadline=None)
@given(caption_and_candidates(), st.one_of(st.none(), st.integers(1, 5)))
def test_every_kept_span_is_exact_and_nothing_is_lost(
    case: tuple[str, list[tuple[str, int | None, int | None]]], cap: int | None
) -> None:
    caption, candidates = case
    kept, dropped = keep_non_overlapping(caption, candidates, cap)
    for p in kept:
        assert caption[p.start : p.end] == p.text
        assert p.norm == normalise(p.text) and p.norm
    assert [p.start for p in kept] == sorted(p.start for p in kept)
    assert all(a.end <= b.start for a, b in itertools.pairwise(kept)), "no overlaps"
    assert len({p.norm for p in kept}) == len(kept), "no repeated phrase"
    assert len(kept) + len(dropped) == len(candidates), "every candidate is kept or dropped with a reason"
    assert all(d.reason for d in dropped)
    assert cap is None or len(kept) <= cap
    for text, _, _ in candidates:
        if text not in caption:
            assert any(d.text == text and d.reason == "not a substring of the caption" for d in dropped)


@pytest.mark.parametrize(
    ("caption", "text", "start", "end", "expected"),
    [
        ("a dog and a dog", "a dog", 0, 5, (0, 5)),  # right offsets kept
        ("a dog and a dog", "a dog", 9, 14, (10, 15)),  # off by one: the nearest occurrence, not the first
        ("a dog and a dog", "a dog", None, None, (0, 5)),  # no offsets: the first occurrence
        ("Café 🐇 and café", "café", 0, 4, (11, 15)),  # case matters; emoji is one code point
        ("naïve e\u0301 cat", "cat", 7, 10, (9, 12)),  # combining accent counts as its own code point
        ("日本の猫が日本の犬を見る", "日本の犬", 0, 4, (5, 9)),
        ("a dog, a dog.", "a dog.", 7, 13, (7, 13)),
        ("a dog", "a cat", 0, 5, None),
        ("a dog", "", 0, 0, None),
    ],
)
def test_span_table(caption: str, text: str, start: int | None, end: int | None,
                    expected: tuple[int, int] | None) -> None:
    assert fix_span(caption, text, start, end) == expected


def test_repeated_words_take_the_free_occurrence() -> None:
    caption = "a dog chases a dog"
    kept, dropped = keep_non_overlapping(caption, [("a dog", 0, 5), ("a dog", 0, 5), ("chases", 6, 12)])
    assert [(p.text, p.start) for p in kept] == [("a dog", 0), ("chases", 6)]
    assert [(d.text, d.reason) for d in dropped] == [("a dog", "repeats an earlier phrase")]
    kept, _ = keep_non_overlapping("the red ball hits the red ball", [("the red", 0, 7), ("red ball", 0, 0)])
    assert [(p.text, p.start, p.end) for p in kept] == [("the red", 0, 7), ("red ball", 22, 30)]  # not 4: taken


def test_llm_offsets_of_the_wrong_type_are_ignored_not_fatal() -> None:
    got = parse_reply('{"phrases": [{"text": "a dog", "start": "3", "end": 8.5}, {"text": "x", "start": true}]}')
    assert got == [("a dog", None, None), ("x", None, None)]
