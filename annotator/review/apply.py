"""Reviewers' decisions applied to an item, exactly: what the review gate does on the next run.

Renamed phrases change the caption words and the category; dropped objects lose their `[SEG]` and markup
(their words stay); a merged object's masks are unioned into the object it joins; fixed masks replace the
tracker's as stored; an edited caption re-anchors every grounded phrase. Each touched object says so in its
`provenance`; an accepted item's untouched objects become `reviewed`.
"""

from __future__ import annotations

import re

from annotator import masks
from annotator.phrases.spans import normalise
from annotator.records import DroppedObject, Hold, LinkedObject, MaskTrack, Phrase, VideoItem
from annotator.review.store import Decision

TAG = re.compile(r"\[([^\[\]]+)\]\((\d+)\)")  # "[a brown rabbit](3)": phrase text, object id


class DecisionError(ValueError):
    """A decision that cannot apply to this item (unknown object, a caption that breaks a link...)."""


def parse_tagged(text: str) -> tuple[str, list[tuple[int, int, str, int]]]:
    """Plain caption and (start, end, phrase, object id) of each `[phrase](id)` tag in an edited caption."""
    plain, spans, last = [], [], 0
    length = 0
    for match in TAG.finditer(text):
        before = text[last:match.start()]
        plain.append(before)
        length += len(before)
        phrase = match.group(1)
        spans.append((length, length + len(phrase), phrase, int(match.group(2))))
        plain.append(phrase)
        length += len(phrase)
        last = match.end()
    plain.append(text[last:])
    return "".join(plain), spans


def tagged_caption(item: VideoItem) -> str:
    """The item's caption with each grounded phrase written `[phrase](object id)`: what a reviewer edits."""
    caption = item.caption or ""
    marks = sorted(((item.phrases[o.phrase].start, item.phrases[o.phrase].end, o.object_id) for o in item.objects),
                   reverse=True)
    for start, end, oid in marks:
        caption = f"{caption[:start]}[{caption[start:end]}]({oid}){caption[end:]}"
    return caption


def check_caption(item: VideoItem, text: str) -> None:
    """Every object of the item tagged exactly once, no unknown id, no empty phrase: else a DecisionError."""
    _, spans = parse_tagged(text)
    ids = [oid for *_, oid in spans]
    known = {o.object_id for o in item.objects}
    if unknown := sorted(set(ids) - known):
        raise DecisionError(f"the caption tags unknown object ids {unknown}; the item has {sorted(known)}")
    if missing := sorted(known - set(ids)):
        raise DecisionError(f"the caption no longer tags objects {missing}: drop them instead of untagging them")
    if twice := sorted({i for i in ids if ids.count(i) > 1}):
        raise DecisionError(f"objects {twice} are tagged more than once")
    if any(not phrase.strip() for _, _, phrase, _ in spans):
        raise DecisionError("a tagged phrase is empty")


def _object(item: VideoItem, oid: int | None) -> LinkedObject:
    for obj in item.objects:
        if obj.object_id == oid:
            return obj
    raise DecisionError(f"{item.video_id} has no object {oid}")


def _rename(item: VideoItem, obj: LinkedObject, text: str) -> None:
    text = text.strip()
    if not text:
        raise DecisionError("a phrase cannot be renamed to nothing")
    phrase = item.phrases[obj.phrase]
    caption = item.caption or ""
    delta = len(text) - (phrase.end - phrase.start)
    item.caption = caption[:phrase.start] + text + caption[phrase.end:]
    for other in item.phrases:
        if other is not phrase and other.start >= phrase.end:
            other.start, other.end = other.start + delta, other.end + delta
    phrase.text, phrase.end, phrase.norm = text, phrase.start + len(text), normalise(text)


def _merge(item: VideoItem, gone: LinkedObject, into: LinkedObject, decision: Decision) -> None:
    assert item.info is not None
    h, w = item.info.height, item.info.width
    per_frame: dict[int, list[tuple[str, float]]] = {}
    for obj in (into, gone):
        for f, rle, score in zip(obj.masks.frames, obj.masks.rles, obj.masks.scores, strict=True):
            per_frame.setdefault(f, []).append((rle, score))
    frames = sorted(per_frame)
    into.masks = MaskTrack(frames=frames, rles=[masks.union([r for r, _ in per_frame[f]], h, w) for f in frames],
                           scores=[max(s for _, s in per_frame[f]) for f in frames])
    into.track_ids = sorted(set(into.track_ids) | set(gone.track_ids))
    into.provenance = "edited"
    _remove(item, gone, f"merged into object {into.object_id} by {decision.reviewer}")


def _remove(item: VideoItem, obj: LinkedObject, reason: str) -> None:
    item.objects = [o for o in item.objects if o is not obj]
    item.dropped_objects.append(DroppedObject(obj.object_id, item.phrases[obj.phrase].text, reason))


def _caption(item: VideoItem, text: str) -> None:
    check_caption(item, text)
    plain, spans = parse_tagged(text)
    item.caption = plain
    by_id = {o.object_id: o for o in item.objects}
    item.phrases = []
    for start, end, phrase, oid in spans:
        by_id[oid].phrase = len(item.phrases)
        item.phrases.append(Phrase(phrase, start, end, normalise(phrase)))
        if by_id[oid].provenance in ("machine", "dataset"):
            by_id[oid].provenance = "edited"


def _fix(item: VideoItem, obj: LinkedObject, payload: dict) -> None:
    frames, rles = payload.get("frames"), payload.get("rles")
    if not isinstance(frames, list) or not isinstance(rles, list) or len(frames) != len(rles):
        raise DecisionError("a mask fix needs as many RLEs as frames")
    assert item.info is not None
    if any(not isinstance(f, int) or not 0 <= f < len(item.info.frame_indices) for f in frames):
        raise DecisionError("a mask fix names frames the item does not have")
    obj.masks = MaskTrack(frames=list(frames), rles=list(rles),
                          scores=[float(s) for s in payload.get("scores", [1.0] * len(frames))])
    obj.provenance = "fixed"


def apply(item: VideoItem, decisions: list[Decision]) -> None:
    """Apply the decisions in force (oldest first); a reject holds the item as filtered with its reason."""
    status = None
    for d in sorted(decisions, key=lambda d: d.id):
        if d.action in ("accept", "reject", "policy"):
            status = d
        elif d.action == "caption":
            _caption(item, str(d.payload.get("text", "")))
        elif d.action == "rename":
            obj = _object(item, d.object)
            _rename(item, obj, str(d.payload.get("text", "")))
            obj.provenance = "fixed" if obj.provenance == "fixed" else "edited"
        elif d.action == "drop":
            _remove(item, _object(item, d.object), f"dropped by {d.reviewer}: {d.reason or 'no reason given'}")
        elif d.action == "merge":
            _merge(item, _object(item, d.object), _object(item, d.payload.get("into")), d)
        elif d.action == "fix_mask":
            _fix(item, _object(item, d.object), d.payload)
    if status is not None and status.action == "reject":
        item.hold = Hold("filtered", "review_gate",
                         f"rejected by {status.reviewer}: {status.reason or 'no reason given'}")
    elif status is not None and status.action == "accept":
        for obj in item.objects:
            if obj.provenance in ("machine", "dataset"):
                obj.provenance = "reviewed"
