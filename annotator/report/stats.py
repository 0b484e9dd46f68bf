"""The numbers a report shows, computed from a run's finished items and its errors."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from annotator import masks
from annotator.records import VideoItem

LISTED = 200  # rows a report names one by one (dropped objects, failed and filtered files); the rest are counted
AREA_STEP = 1e-3  # mask areas are counted to a thousandth of the frame: a histogram needs no finer


@dataclass
class RunStats:
    """Counts and histograms as value -> count, so a report over millions of masks holds what it draws, not one
    number per mask."""

    videos: int = 0
    errors: int = 0
    qa: int = 0
    objects: int = 0
    masks: int = 0  # non-empty per-frame masks
    objects_per_video: Counter[int] = field(default_factory=Counter)
    track_lengths: Counter[int] = field(default_factory=Counter)  # frames per object
    mask_areas: Counter[float] = field(default_factory=Counter)  # fraction of the frame, in AREA_STEP steps
    phrases: Counter[str] = field(default_factory=Counter)
    drop_reasons: Counter[str] = field(default_factory=Counter)
    error_reasons: Counter[str] = field(default_factory=Counter)
    dropped_objects: list[tuple[str, int, str, str]] = field(default_factory=list)  # the first LISTED: video,
    dropped_count: int = 0  # object, phrase, reason; and how many in all


def compute(items: Iterable[VideoItem], errors: int, error_reasons: Counter[str]) -> RunStats:
    """The figures over `items`, folded one at a time (a run's items are read a video at a time)."""
    stats = RunStats(errors=errors, error_reasons=Counter(error_reasons))
    for item in items:
        if item.error is not None or item.info is None:
            continue
        stats.videos += 1
        stats.qa += len(item.qa)
        stats.objects += len(item.objects)
        stats.objects_per_video[len(item.objects)] += 1
        h, w = item.info.height, item.info.width
        for obj in item.objects:
            stats.phrases[item.phrases[obj.phrase].norm] += 1
            stats.track_lengths[len(obj.masks.frames)] += 1
            for counts in obj.masks.rles:
                area = masks.area(counts, h, w)
                if area:
                    stats.masks += 1
                    stats.mask_areas[round(area / (h * w) / AREA_STEP) * AREA_STEP] += 1
        stats.drop_reasons.update(_reason_kind(d.reason) for d in item.dropped_phrases)
        stats.drop_reasons.update(f"object: {_check_kind(d.reason)}" for d in item.dropped_objects)
        stats.dropped_count += len(item.dropped_objects)
        room = LISTED - len(stats.dropped_objects)
        stats.dropped_objects += [(item.video_id, d.object_id, d.phrase, d.reason)
                                  for d in item.dropped_objects[:max(room, 0)]]
    return stats


def _check_kind(reason: str) -> str:
    """The filter check behind an object's drop reason: its threshold's name, without the measured value."""
    match = re.search(r"\b((?:min|max)_\w+|duplicate|border)", reason)
    return match.group(1) if match else reason


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in a parameter value ("beyond max_phrases=4" -> "beyond max_phrases")."""
    return reason.split("=")[0]
