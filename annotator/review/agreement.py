"""Machine vs review: how far the machine's labels held up against the people who reviewed them.

Only items a person decided count (accepted or rejected by a reviewer; `policy` releases are not reviews).
Each is compared as the review gate received it (the machine's version) with the decisions in force applied:
- items: accepted as is, edited (accepted with any change), rejected (with the reasons given);
- objects of accepted items: kept (untouched), renamed (phrase text changed, by `rename` or a caption edit),
  dropped, merged, fixed (mask replaced); one object can be renamed and fixed;
- fixed masks: IoU of the machine's track and the person's fix, per frame (over the frames either has; two
  empty masks agree) and per track (summed intersection over summed union);
- scores: per score the gate orders by (the detector's best score for the object's phrase, the tracker's mean
  mask score, the item's review priority), the `below` threshold that would have sent every corrected object
  or item to review, and the share of reviewed ones it would have sent; and the accept-as-is rate per
  priority bucket. If the gate's doubt ordering is right, corrections cluster at low priority.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from annotator import masks
from annotator.records import LinkedObject, VideoItem
from annotator.review import apply as decisions
from annotator.review.items import ReviewRun
from annotator.review.store import Decision
from annotator.stages.review_gate import score_parts

BUCKETS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
EDITS = ("rename", "drop", "merge", "caption", "fix_mask")


@dataclass
class FixedMask:
    video_id: str
    object_id: int
    track_iou: float
    frame_ious: dict[int, float]  # sampled-frame position -> IoU


@dataclass
class Agreement:
    reviewed: int = 0
    accepted_as_is: int = 0
    edited: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("total", "kept", "renamed", "dropped", "merged", "fixed"), 0))
    fixed_masks: list[FixedMask] = field(default_factory=list)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets: list[dict[str, Any]] = field(default_factory=list)
    unapplied: list[str] = field(default_factory=list)  # items whose decisions no longer apply, with why

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean_fixed_iou"] = round(float(np.mean([f.track_iou for f in self.fixed_masks])), 6) \
            if self.fixed_masks else None
        return out


def _mask_ious(item: VideoItem, machine: LinkedObject, fixed: LinkedObject) -> FixedMask:
    assert item.info is not None
    h, w = item.info.height, item.info.width
    before = dict(zip(machine.masks.frames, machine.masks.rles, strict=True))
    after = dict(zip(fixed.masks.frames, fixed.masks.rles, strict=True))
    empty = np.zeros((h, w), bool)
    inter = union = 0
    per_frame = {}
    for frame in sorted(set(before) | set(after)):
        a = masks.decode(before[frame], h, w) if frame in before else empty
        b = masks.decode(after[frame], h, w) if frame in after else empty
        i, u = int((a & b).sum()), int((a | b).sum())
        inter, union = inter + i, union + u
        per_frame[frame] = round(i / u, 6) if u else 1.0
    return FixedMask(item.video_id, machine.object_id, round(inter / union, 6) if union else 1.0, per_frame)


def _scores(item: VideoItem) -> dict[int, dict[str, float]]:
    """object id -> {"detect": best detection score of its phrase, "track": mean mask score} (where known): the
    two parts of the gate's own per-object score."""
    out = {}
    for obj, (track, detect) in zip(item.objects, score_parts(item), strict=True):
        out[obj.object_id] = {k: v for k, v in (("track", track), ("detect", detect)) if v is not None}
    return out


def _threshold(scored: list[tuple[float, bool]]) -> dict[str, Any]:
    """The `below` threshold that catches every corrected one: just above the highest corrected score."""
    corrected = [s for s, bad in scored if bad]
    top = max(corrected) if corrected else None
    sent = sum(s <= top for s, _ in scored) if top is not None else 0
    return {"reviewed": len(scored), "corrected": len(corrected),
            "highest_corrected_score": round(top, 6) if top is not None else None,
            "would_send": round(sent / len(scored), 6) if scored else 0.0}


def _bucket(priority: float) -> int:
    return min(int(np.searchsorted(BUCKETS, priority, side="right")) - 1, len(BUCKETS) - 2)


def compute(run_dir: str) -> Agreement:
    review = ReviewRun(run_dir)
    out = Agreement()
    objects: list[tuple[str, float, bool]] = []  # (score name, score, corrected)
    items: list[tuple[float, bool]] = []  # (review priority, corrected)
    per_bucket = [[0, 0] for _ in BUCKETS[:-1]]
    for vid in review.decided():
        force = review.store.latest(vid)
        status = next(d for d in force if d.field == "status")
        machine = review.base(vid)
        final = copy.deepcopy(machine)
        try:
            decisions.apply(final, force)
        except decisions.DecisionError as exc:
            out.unapplied.append(f"{vid}: {exc}")
            continue
        out.reviewed += 1
        edited = any(d.action in EDITS for d in force)
        corrected = status.action == "reject" or edited
        priority = float(machine.review_priority or 0.0)
        items.append((priority, corrected))
        per_bucket[_bucket(priority)][0] += 1
        if status.action == "reject":
            out.rejected += 1
            reason = status.reason or "no reason given"
            out.reject_reasons[reason] = out.reject_reasons.get(reason, 0) + 1
            continue
        out.edited += edited
        out.accepted_as_is += not edited
        per_bucket[_bucket(priority)][1] += not edited
        objects += _objects(out, machine, final, force)
    for name in ("detect", "track"):
        scored = [(s, bad) for kind, s, bad in objects if kind == name]
        if scored:
            out.thresholds[name] = _threshold(scored)
    if items:
        out.thresholds["review_priority"] = _threshold(items)
    out.buckets = [{"priority": f"{lo:.1f}-{hi:.1f}", "reviewed": n, "accepted_as_is": ok,
                    "accept_rate": round(ok / n, 6) if n else None}
                   for (lo, hi), (n, ok) in zip(pairwise(BUCKETS), per_bucket, strict=True)]
    return out


def _objects(out: Agreement, machine: VideoItem, final: VideoItem,
             force: list[Decision]) -> list[tuple[str, float, bool]]:
    """Count what happened to each of the machine's objects of an accepted item; their scores, corrected or not."""
    after = {o.object_id: o for o in final.objects}
    merged = {d.object for d in force if d.action == "merge"}
    scores = _scores(machine)
    rows = []
    for obj in machine.objects:
        out.objects["total"] += 1
        kinds = []
        if obj.object_id not in after:
            kinds.append("merged" if obj.object_id in merged else "dropped")
        else:
            now = after[obj.object_id]
            if final.phrases[now.phrase].text.strip() != machine.phrases[obj.phrase].text.strip():
                kinds.append("renamed")
            if now.provenance == "fixed":
                kinds.append("fixed")
                out.fixed_masks.append(_mask_ious(machine, obj, now))
        for kind in kinds or ["kept"]:
            out.objects[kind] += 1
        rows += [(name, s, bool(kinds)) for name, s in scores.get(obj.object_id, {}).items()]
    return rows
