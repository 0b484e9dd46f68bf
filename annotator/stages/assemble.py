"""Assemble: the QA triplet, whose answer tags each linked phrase as `<p> phrase </p> [SEG]`.

The i-th `[SEG]` of the answer belongs to the i-th entry of `object_ids`, in caption order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from annotator.records import QA, VideoItem
from annotator.stage import PerItemStage, Resources, register

DEFAULT_QUESTIONS = [
    "Describe the video in detail, and segment every object you mention.",
    "What happens in this video? Ground each object in your answer.",
]


def grounded_answer(caption: str, spans: list[tuple[int, int]]) -> str:
    """Wrap each (start, end) span of the caption in `<p> … </p> [SEG]`; spans must not overlap."""
    parts, pos = [], 0
    for start, end in sorted(spans):
        parts.append(caption[pos:start])
        parts.append(f"<p> {caption[start:end]} </p> [SEG]")
        pos = end
    parts.append(caption[pos:])
    return "".join(parts)


def pick(options: list[str], key: str) -> str:
    """A deterministic choice per key, so reruns and other executors pick the same question."""
    digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
    return options[digest % len(options)]


@register
@dataclass
class AssembleStage(PerItemStage):
    name = "assemble"
    resources = Resources(cpus=0.25)
    batch_size = 8

    questions: list[str] = field(default_factory=lambda: list(DEFAULT_QUESTIONS))

    def __post_init__(self) -> None:
        if not self.questions:
            raise ValueError("questions must hold at least one question")

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.caption is None:
            raise ValueError("caption has not run")
        item.qa = []
        if not item.objects:
            return item  # nothing grounded: no triplet (counted in the manifest)
        objects = sorted(item.objects, key=lambda o: item.phrases[o.phrase].start)
        spans = [(item.phrases[o.phrase].start, item.phrases[o.phrase].end) for o in objects]
        item.qa.append(QA(
            qa_id=f"{item.video_id}-0",
            question=pick(self.questions, item.video_id),
            answer=grounded_answer(item.caption, spans),
            object_ids=[o.object_id for o in objects],
        ))
        return item
