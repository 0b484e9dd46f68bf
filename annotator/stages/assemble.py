"""Assemble: the QA triplet, whose answer tags each linked phrase as `<p> phrase </p> [SEG]`.

The i-th `[SEG]` of the answer belongs to the i-th entry of `object_ids`, in caption order.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from annotator import prompts
from annotator.records import QA, VideoItem
from annotator.stage import PerItemStage, Resources, register


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
    outputs = ("qa",)

    questions: str | list[str] = "prompts/gcg_questions.v1.md"  # a versioned question-set template, or a list
    seed: int = 0  # which question each video gets: a hash of (seed, video id)

    def __post_init__(self) -> None:
        if isinstance(self.questions, list) and not self.questions:
            raise ValueError("questions must hold at least one question")
        if isinstance(self.questions, str):
            prompts.check(self.questions, as_list=True)

    def required_paths(self) -> dict[str, str]:
        extra = {"questions": self.questions} if isinstance(self.questions, str) else {}
        return {**super().required_paths(), **extra}

    def cache_inputs(self) -> dict[str, Any]:
        return {"questions": prompts.load(self.questions).cache_key()} if isinstance(self.questions, str) else {}

    def preload(self) -> None:
        _ = self.question_list

    @functools.cached_property
    def question_list(self) -> list[str]:
        """The question set, read once (in the driver, see `preload`); not a param."""
        return prompts.load(self.questions).items() if isinstance(self.questions, str) else list(self.questions)

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
            question=item.question or pick(self.question_list, f"{self.seed}:{item.video_id}"),
            answer=grounded_answer(item.caption, spans),
            object_ids=[o.object_id for o in objects],
        ))
        return item
