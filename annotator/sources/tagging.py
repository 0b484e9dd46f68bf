"""Captions tagged with known object ids: `... [a brown rabbit](3) sits by [the tree](7) ...`.

Source datasets come with objects (ids and categories or expressions) but no dense caption; an LLM writes one
and tags each mention with its object's id. This module checks what it wrote: every tag names a known id, every
tag holds a phrase (no brackets inside it: nested tags are refused), and the plain caption keeps each tagged
phrase as an exact span. Ids the caption never tags are reported, not refused (the object simply stays
ungrounded). The same text tagged twice gives two spans, each at its own occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from annotator.phrases.spans import normalise
from annotator.records import Phrase

TAG = re.compile(r"\[([^\[\]]*)\]\((\d+)\)")


class TaggingError(ValueError):
    """A tagged caption that cannot be trusted; the message says what to fix (it goes into a repair request)."""


@dataclass
class Tagged:
    caption: str  # without tags
    phrases: list[Phrase] = field(default_factory=list)  # in caption order
    ids: list[int] = field(default_factory=list)  # the object id of each phrase
    untagged: list[int] = field(default_factory=list)  # known ids the caption never tags
    repeated: list[int] = field(default_factory=list)  # ids tagged more than once


def parse_tagged(text: str, known: set[int] | dict[int, str]) -> Tagged:
    """The plain caption with exact phrase spans and their ids; TaggingError on unknown ids or broken tags."""
    known_ids = set(known)
    if not text.strip():
        raise TaggingError("the reply is empty: write the paragraph")
    stray = re.sub(TAG, "", text)
    if re.search(r"\[[^\]]*\]\(\d+\)", stray) or re.search(r"\]\(\d+\)", stray):
        raise TaggingError("a tag contains brackets (nested tags are not allowed): write [phrase](id) around plain "
                           "words only")
    out = Tagged(caption="")
    pieces, at, length = [], 0, 0
    for match in TAG.finditer(text):
        before = text[at:match.start()]
        pieces.append(before)
        length += len(before)
        phrase, object_id = match.group(1).strip(), int(match.group(2))
        if not phrase:
            raise TaggingError(f"tag ({object_id}) has no words: write [phrase]({object_id})")
        if object_id not in known_ids:
            raise TaggingError(f"id {object_id} is not one of the objects {sorted(known_ids)}")
        out.phrases.append(Phrase(phrase, length, length + len(phrase), normalise(phrase)))
        out.ids.append(object_id)
        pieces.append(phrase)
        length += len(phrase)
        at = match.end()
    pieces.append(text[at:])
    out.caption = "".join(pieces)
    out.untagged = sorted(known_ids - set(out.ids))
    out.repeated = sorted({i for i in out.ids if out.ids.count(i) > 1})
    return out


def link_phrases(caption: str, pairs: list[tuple[str, int]], known: set[int] | dict[int, str]) -> Tagged:
    """The same from a caption and separate (phrase, id) pairs: each phrase must occur in the caption; a phrase
    listed n times takes its n-th occurrence."""
    known_ids = set(known)
    out = Tagged(caption=caption)
    taken: dict[str, int] = {}
    for phrase, object_id in pairs:
        if object_id not in known_ids:
            raise TaggingError(f"id {object_id} is not one of the objects {sorted(known_ids)}")
        start = -1
        for _ in range(taken.get(phrase, 0) + 1):
            start = caption.find(phrase, start + 1)
            if start < 0:
                break
        if not phrase or start < 0:
            raise TaggingError(f"phrase {phrase!r} (id {object_id}) is not in the caption"
                               + (" that many times" if taken.get(phrase) else ""))
        taken[phrase] = taken.get(phrase, 0) + 1
        out.phrases.append(Phrase(phrase, start, start + len(phrase), normalise(phrase)))
        out.ids.append(object_id)
    order = sorted(range(len(out.phrases)), key=lambda i: out.phrases[i].start)
    out.phrases, out.ids = [out.phrases[i] for i in order], [out.ids[i] for i in order]
    out.untagged = sorted(known_ids - set(out.ids))
    out.repeated = sorted({i for i in out.ids if out.ids.count(i) > 1})
    return out
