"""Phrase spans: every kept phrase is an exact substring of the caption at its offsets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from annotator.records import DroppedPhrase, Phrase

_ARTICLES = re.compile(r"^(a|an|the|this|that|these|those|some)\s+", re.IGNORECASE)


def normalise(text: str) -> str:
    """Detector form: lowercase, single spaces, no leading article or trailing punctuation."""
    text = " ".join(text.lower().split()).strip(" .,;:!?")
    return _ARTICLES.sub("", text).strip()


def occurrences(caption: str, text: str) -> list[int]:
    """Every start offset of `text` in `caption`, overlapping occurrences included."""
    found, at = [], caption.find(text)
    while text and at >= 0:
        found.append(at)
        at = caption.find(text, at + 1)
    return found


def fix_span(caption: str, text: str, start: int | None, end: int | None,
             taken: Sequence[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """The given offsets if they hold `text`; else the free occurrence of `text` nearest them; else None.

    LLMs often miscount offsets; with repeated words the nearest free occurrence is the one meant, not the first.
    """
    if not text:
        return None
    if start is not None and end is not None and 0 <= start <= end <= len(caption) and caption[start:end] == text:
        return start, end
    found = occurrences(caption, text)
    free = [s for s in found if not any(s < e and b < s + len(text) for b, e in taken)]
    candidates = free or found
    if not candidates:
        return None
    best = min(candidates, key=lambda s: abs(s - start)) if start is not None else candidates[0]
    return best, best + len(text)


def keep_non_overlapping(
    caption: str, candidates: list[tuple[str, int | None, int | None]], max_phrases: int | None = None
) -> tuple[list[Phrase], list[DroppedPhrase]]:
    """Check spans, drop overlaps, duplicates and empty normal forms, in caption order; say why each was dropped."""
    kept: list[Phrase] = []
    dropped: list[DroppedPhrase] = []
    seen_norms: set[str] = set()
    for text, start, end in candidates:
        span = fix_span(caption, text, start, end, [(p.start, p.end) for p in kept])
        if span is None:
            dropped.append(DroppedPhrase(text, "not a substring of the caption"))
            continue
        norm = normalise(text)
        if not norm:
            dropped.append(DroppedPhrase(text, "empty after normalisation"))
        elif norm in seen_norms:
            dropped.append(DroppedPhrase(text, "repeats an earlier phrase"))
        elif any(span[0] < p.end and p.start < span[1] for p in kept):
            dropped.append(DroppedPhrase(text, "overlaps an earlier phrase"))
        else:
            kept.append(Phrase(text=text, start=span[0], end=span[1], norm=norm))
            seen_norms.add(norm)
    kept.sort(key=lambda p: p.start)
    return cap(kept, dropped, max_phrases)


def cap(kept: list[Phrase], dropped: list[DroppedPhrase],
        max_phrases: int | None) -> tuple[list[Phrase], list[DroppedPhrase]]:
    """The first `max_phrases` phrases in caption order; the rest are dropped, saying so."""
    if max_phrases is None or len(kept) <= max_phrases:
        return kept, dropped
    return kept[:max_phrases], dropped + [DroppedPhrase(p.text, f"beyond max_phrases={max_phrases}")
                                          for p in kept[max_phrases:]]
