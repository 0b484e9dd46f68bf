"""Deterministic phrase extraction: match a category list (COCO names by default) in the caption.

Longest names match first, on word boundaries, case-insensitively, with an optional plural `s`/`es`;
a preceding article is kept in the phrase ("a rabbit") so the answer text reads naturally.
"""

from __future__ import annotations

import re

from annotator.phrases.spans import keep_non_overlapping
from annotator.records import DroppedPhrase, Phrase

COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)


class VocabularyPhraser:
    def __init__(self, categories: list[str] | None = None, max_phrases: int | None = None) -> None:
        names = sorted({c.strip().lower() for c in (categories or COCO_NAMES) if c.strip()}, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names)
        self.pattern = re.compile(
            rf"\b(?:(?:a|an|the)\s+)?(?:{alternatives})(?:e?s)?\b", re.IGNORECASE
        )
        self.max_phrases = max_phrases

    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        candidates: list[tuple[str, int | None, int | None]] = [
            (m.group(0), m.start(), m.end()) for m in self.pattern.finditer(caption)
        ]
        return keep_non_overlapping(caption, candidates, self.max_phrases)
