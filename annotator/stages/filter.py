"""Filter: small named quality checks, each keep-or-reason, between link and assemble.

Object checks drop an object with its reason (`VideoItem.dropped_objects`); assemble then leaves its phrase's
words untagged. Item checks run on what is left and *filter* the item (a settled state with its reason, not
an error): an item with nothing grounded is filtered. Every threshold is a YAML param; `None` turns a check off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import Field

from annotator import masks
from annotator.records import DroppedObject, Hold, LinkedObject, VideoItem
from annotator.stage import Count, NonNegative, PerItemStage, Probability, Resources, register

ObjectCheck = Callable[["FilterStage", VideoItem, LinkedObject, np.ndarray], str | None]
ItemCheck = Callable[["FilterStage", VideoItem], str | None]


def _areas(stack: np.ndarray) -> np.ndarray:
    return stack.reshape(len(stack), -1).sum(axis=1).astype(float)


def area_fraction(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    visible = _areas(stack)[_areas(stack) > 0]
    share = float(visible.mean()) / (stack.shape[1] * stack.shape[2]) if len(visible) else 0.0
    if f.min_area_fraction is not None and share < f.min_area_fraction:
        return f"mask area {share:.4f} of the frame < min_area_fraction {f.min_area_fraction}"
    if f.max_area_fraction is not None and share > f.max_area_fraction:
        return f"mask area {share:.4f} of the frame > max_area_fraction {f.max_area_fraction}"
    return None


def area_flicker(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    if f.max_area_flicker is None or len(stack) < 2:
        return None
    a = _areas(stack)
    change = np.abs(np.diff(a)) / np.maximum(np.maximum(a[1:], a[:-1]), 1.0)
    worst = float(change.max())
    return f"area changes by {worst:.2f} between frames > max_area_flicker {f.max_area_flicker}" \
        if worst > f.max_area_flicker else None


def visible_fraction(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    assert item.info is not None
    share = int((_areas(stack) > 0).sum()) / max(1, len(item.info.frame_indices))
    if f.min_visible_fraction is not None and share < f.min_visible_fraction:
        return f"visible on {share:.2f} of the sampled frames < min_visible_fraction {f.min_visible_fraction}"
    return None


def track_length(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    frames = int((_areas(stack) > 0).sum())
    if f.min_track_frames is not None and frames < f.min_track_frames:
        return f"visible on {frames} frames < min_track_frames {f.min_track_frames}"
    return None


def mean_score(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    score = float(np.mean(obj.masks.scores)) if obj.masks.scores else 0.0
    if f.min_mean_score is not None and score < f.min_mean_score:
        return f"mean score {score:.3f} < min_mean_score {f.min_mean_score}"
    return None


def border_everywhere(f: FilterStage, item: VideoItem, obj: LinkedObject, stack: np.ndarray) -> str | None:
    if not f.drop_border_everywhere or not len(stack):
        return None
    edges = stack[:, 0, :].any(axis=1) | stack[:, -1, :].any(axis=1) | stack[:, :, 0].any(axis=1) | \
        stack[:, :, -1].any(axis=1)
    return "mask touches the frame border on every frame" if bool(edges.all()) else None


OBJECT_CHECKS: dict[str, ObjectCheck] = {
    "area_fraction": area_fraction, "area_flicker": area_flicker, "visible_fraction": visible_fraction,
    "track_length": track_length, "mean_score": mean_score, "border_everywhere": border_everywhere,
}


def grounded(f: FilterStage, item: VideoItem) -> str | None:
    n = len(item.objects)
    return f"{n} grounded phrases < min_grounded {f.min_grounded}" if n < f.min_grounded else None


def ungrounded_share(f: FilterStage, item: VideoItem) -> str | None:
    total = len(item.objects) + len(item.dropped_phrases) + len(item.dropped_objects)
    share = (total - len(item.objects)) / total if total else 0.0
    if f.max_ungrounded_share is not None and share > f.max_ungrounded_share:
        return f"{share:.2f} of the phrases ungrounded > max_ungrounded_share {f.max_ungrounded_share}"
    return None


def caption_length(f: FilterStage, item: VideoItem) -> str | None:
    n = len(item.caption or "")
    if f.min_caption_chars is not None and n < f.min_caption_chars:
        return f"caption of {n} characters < min_caption_chars {f.min_caption_chars}"
    if f.max_caption_chars is not None and n > f.max_caption_chars:
        return f"caption of {n} characters > max_caption_chars {f.max_caption_chars}"
    return None


ITEM_CHECKS: dict[str, ItemCheck] = {"grounded": grounded, "ungrounded_share": ungrounded_share,
                                     "caption_length": caption_length}


@register
@dataclass
class FilterStage(PerItemStage):
    name = "filter"
    resources = Resources(cpus=0.25)
    batch_size = 8
    outputs = ("objects", "dropped_objects")

    min_area_fraction: Probability | None = None  # mean visible mask area / frame area
    max_area_fraction: Probability | None = None
    max_area_flicker: Annotated[float, Field(ge=0)] | None = None  # largest relative area change frame to frame
    min_visible_fraction: Probability | None = None  # frames with mask / sampled frames
    min_track_frames: Count | None = None
    min_mean_score: Probability | None = None
    max_duplicate_iou: Probability | None = None  # mean mask IoU with an earlier object of the same item
    drop_border_everywhere: bool = False
    min_grounded: NonNegative = 1  # fewer grounded phrases left: the item is filtered
    max_ungrounded_share: Probability | None = None
    min_caption_chars: NonNegative | None = None
    max_caption_chars: Count | None = None

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        h, w = item.info.height, item.info.width
        kept: list[tuple[LinkedObject, np.ndarray]] = []
        for obj in sorted(item.objects, key=lambda o: o.object_id):
            stack = masks.decode_batch(obj.masks.rles, h, w)
            reason = next((r for check in OBJECT_CHECKS.values() if (r := check(self, item, obj, stack))), None)
            reason = reason or self._duplicate(obj, stack, kept)
            if reason:
                item.dropped_objects.append(DroppedObject(obj.object_id, item.phrases[obj.phrase].text, reason))
            else:
                kept.append((obj, stack))
        item.objects = [o for o, _ in kept]
        reason = next((r for check in ITEM_CHECKS.values() if (r := check(self, item))), None)
        if reason:
            item.hold = Hold("filtered", self.name, reason)
        return item

    def _duplicate(self, obj: LinkedObject, stack: np.ndarray,
                   kept: list[tuple[LinkedObject, np.ndarray]]) -> str | None:
        if self.max_duplicate_iou is None:
            return None
        for other, other_stack in kept:
            common = sorted(set(obj.masks.frames) & set(other.masks.frames))
            if not common:
                continue
            ious = [masks.iou(stack[obj.masks.frames.index(f)], other_stack[other.masks.frames.index(f)])
                    for f in common]
            if float(np.mean(ious)) >= self.max_duplicate_iou:
                return (f"duplicate of object {other.object_id} (mean mask IoU {np.mean(ious):.2f} >= "
                        f"max_duplicate_iou {self.max_duplicate_iou})")
        return None
