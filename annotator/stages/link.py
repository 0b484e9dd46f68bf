"""Link: tie each phrase to its tracks; the phrase's object is the per-frame union of those tracks.

A phrase naming several things ("two rabbits") thus has one object with a union mask, which is what
VideoGLaMM's loaders expect of one `[SEG]`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from annotator import masks
from annotator.records import DroppedPhrase, LinkedObject, MaskTrack, VideoItem
from annotator.stage import NonNegative, PerItemStage, Resources, register


@register
@dataclass
class LinkStage(PerItemStage):
    name = "link"
    resources = Resources(cpus=0.25)
    batch_size = 8
    outputs = ("objects", "dropped_phrases")

    min_mask_area: NonNegative = 1  # a track whose largest mask is smaller (pixels) is not linked

    @staticmethod
    def _largest_area(rles: list[str], height: int, width: int) -> int:
        return max((masks.area(r, height, width) for r in rles), default=0)

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        h, w = item.info.height, item.info.width
        item.objects = []
        for index, phrase in enumerate(item.phrases):
            tracks = [t for t in item.tracks if t.phrase == index]
            if not tracks:
                item.dropped_phrases.append(DroppedPhrase(phrase.text, "not detected on any keyframe"))
                continue
            tracks = [t for t in tracks if self._largest_area(t.masks.rles, h, w) >= self.min_mask_area]
            if not tracks:
                reason = f"masks below min_mask_area={self.min_mask_area}"
                item.dropped_phrases.append(DroppedPhrase(phrase.text, reason))
                continue
            per_frame: dict[int, list[tuple[str, float]]] = defaultdict(list)
            for t in tracks:
                for f, rle, score in zip(t.masks.frames, t.masks.rles, t.masks.scores, strict=True):
                    per_frame[f].append((rle, score))
            frames = sorted(per_frame)
            item.objects.append(LinkedObject(
                object_id=len(item.objects) + 1, phrase=index, track_ids=[t.track_id for t in tracks],
                masks=MaskTrack(
                    frames=frames,
                    rles=[masks.union([r for r, _ in per_frame[f]], h, w) for f in frames],
                    scores=[max(s for _, s in per_frame[f]) for f in frames],
                ),
            ))
        return item
