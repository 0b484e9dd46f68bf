"""The numbers a report shows, computed from a run's finished items and its errors."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from annotator import masks
from annotator.records import VideoItem


@dataclass
class RunStats:
    videos: int = 0
    errors: int = 0
    qa: int = 0
    objects: int = 0
    masks: int = 0  # non-empty per-frame masks
    objects_per_video: list[int] = field(default_factory=list)
    track_lengths: list[int] = field(default_factory=list)  # frames per object
    mask_areas: list[float] = field(default_factory=list)  # fraction of the frame
    phrases: Counter[str] = field(default_factory=Counter)
    drop_reasons: Counter[str] = field(default_factory=Counter)
    error_reasons: Counter[str] = field(default_factory=Counter)
    dropped_objects: list[tuple[str, int, str, str]] = field(default_factory=list)  # video, object, phrase, reason


def compute(items: Iterable[VideoItem], errors: list[dict]) -> RunStats:
    """The figures over `items`, folded one at a time (a run's items are read a video at a time)."""
    stats = RunStats(errors=len(errors))
    stats.error_reasons.update(f"{e['stage']}: {e['error_type']}" for e in errors)
    for item in items:
        if item.error is not None or item.info is None:
            continue
        stats.videos += 1
        stats.qa += len(item.qa)
        stats.objects += len(item.objects)
        stats.objects_per_video.append(len(item.objects))
        h, w = item.info.height, item.info.width
        for obj in item.objects:
            stats.phrases[item.phrases[obj.phrase].norm] += 1
            stats.track_lengths.append(len(obj.masks.frames))
            for counts in obj.masks.rles:
                area = masks.area(counts, h, w)
                if area:
                    stats.masks += 1
                    stats.mask_areas.append(area / (h * w))
        stats.drop_reasons.update(_reason_kind(d.reason) for d in item.dropped_phrases)
        stats.drop_reasons.update(f"object: {_check_kind(d.reason)}" for d in item.dropped_objects)
        stats.dropped_objects += [(item.video_id, d.object_id, d.phrase, d.reason) for d in item.dropped_objects]
    return stats


def _check_kind(reason: str) -> str:
    """The filter check behind an object's drop reason: its threshold's name, without the measured value."""
    match = re.search(r"\b((?:min|max)_\w+|duplicate|border)", reason)
    return match.group(1) if match else reason


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in a parameter value ("beyond max_phrases=4" -> "beyond max_phrases")."""
    return reason.split("=")[0]
