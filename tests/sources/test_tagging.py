"""The id-tagging parser on a table of what LLMs write: good tags, missing ids, unknown ids, phrases that are not in
the text, nested brackets, repeated phrases and ids."""

from __future__ import annotations

import pytest

from annotator.sources.tagging import TaggingError, link_phrases, parse_tagged

KNOWN = {1: "rabbit", 2: "tree", 3: "bird"}


@pytest.mark.parametrize(("text", "caption", "spans", "untagged", "repeated"), [
    ("[A rabbit](1) sits by [the tree](2) while [a bird](3) sings.", "A rabbit sits by the tree while a bird sings.",
     [("A rabbit", 1), ("the tree", 2), ("a bird", 3)], [], []),
    ("[A rabbit](1) sits by the tree.", "A rabbit sits by the tree.", [("A rabbit", 1)], [2, 3], []),
    ("[a bird](3) and [a bird](3) fly.", "a bird and a bird fly.", [("a bird", 3), ("a bird", 3)], [1, 2], [3]),
    ("[the rabbit](1) meets [the rabbit](2).", "the rabbit meets the rabbit.", [("the rabbit", 1), ("the rabbit", 2)],
     [3], []),
    ("No tags at all.", "No tags at all.", [], [1, 2, 3], []),
])
def test_parse_tagged(text: str, caption: str, spans: list, untagged: list, repeated: list) -> None:
    out = parse_tagged(text, KNOWN)
    assert out.caption == caption
    assert [(p.text, i) for p, i in zip(out.phrases, out.ids, strict=True)] == spans
    assert all(out.caption[p.start:p.end] == p.text for p in out.phrases)
    assert len({p.start for p in out.phrases}) == len(out.phrases), "repeated phrases get their own spans"
    assert (out.untagged, out.repeated) == (untagged, repeated)


@pytest.mark.parametrize(("text", "error"), [
    ("[A rabbit](9) sits.", "id 9 is not one of the objects [1, 2, 3]"),
    ("[a [red] bird](3) sings.", "nested tags are not allowed"),
    ("[[a bird](3)](1) sings.", "nested tags are not allowed"),
    ("[](2) stands.", "tag (2) has no words"),
])
def test_parse_tagged_refuses(text: str, error: str) -> None:
    with pytest.raises(TaggingError, match=error.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_tagged(text, KNOWN)


def test_link_phrases_finds_each_phrase_and_its_repeats() -> None:
    caption = "a bird sees a bird near the tree"
    out = link_phrases(caption, [("the tree", 2), ("a bird", 3), ("a bird", 1)], KNOWN)
    assert [(p.text, p.start, i) for p, i in zip(out.phrases, out.ids, strict=True)] == [
        ("a bird", 0, 3), ("a bird", 12, 1), ("the tree", 24, 2)]
    with pytest.raises(TaggingError, match="'a cat' \\(id 1\\) is not in the caption"):
        link_phrases(caption, [("a cat", 1)], KNOWN)
    with pytest.raises(TaggingError, match="not in the caption that many times"):
        link_phrases(caption, [("the tree", 2), ("the tree", 1)], KNOWN)
    with pytest.raises(TaggingError, match="id 5"):
        link_phrases(caption, [("a bird", 5)], KNOWN)
