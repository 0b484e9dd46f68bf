"""Small protocols each model role implements, so stages can run with a real model, a tiny one or a fake."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np
from pydantic import ConfigDict

from annotator.records import DroppedPhrase, Phrase


@dataclass
class CaptionRequest:
    frames: np.ndarray  # (T, H, W, 3) RGB uint8
    prompt: str


class Captioner(Protocol):
    def caption(self, requests: list[CaptionRequest]) -> list[str | Exception]:
        """One text per request, or the exception that request ended with (others still complete)."""
        ...


class PhraseExtractor(Protocol):
    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        """Phrases with exact spans into `caption`, and what was dropped with why."""
        ...


@dataclass
class Extraction:
    """One caption's phrases (or the exception it ended with) and what it took (requests, retries...)."""

    phrases: list[Phrase] = field(default_factory=list)
    dropped: list[DroppedPhrase] = field(default_factory=list)
    error: Exception | None = None
    counters: Counter[str] = field(default_factory=Counter)


def extract_all(extractor: PhraseExtractor, captions: list[str]) -> list[Extraction]:
    """A batch at once where the extractor can (`extract_many`: served LLMs), else caption by caption."""
    many = getattr(extractor, "extract_many", None)
    if many is not None:
        return many(captions)
    out = []
    for caption in captions:
        try:
            out.append(Extraction(*extractor.extract(caption)))
        except Exception as exc:  # noqa: BLE001 - one caption's failure is that item's error
            out.append(Extraction(error=exc))
    return out


@dataclass
class BoxHit:
    phrase: int  # index into the phrases the detector was given
    box: list[float]  # x0, y0, x1, y1 in image pixels
    score: float


@dataclass
class PhraseThresholds:
    """Per-phrase detector overrides: keep a box for a phrase when its best token probability reaches `box` and
    the mean over the phrase's tokens reaches `text` (every word must support it: "red cup" is not a red car)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    box: float | None = None
    text: float | None = None


class Detector(Protocol):
    def detect(self, image: np.ndarray, phrases: list[str]) -> list[BoxHit]: ...


@dataclass
class Prompt:
    """A box, a mask or clicked points for one object on one frame (`frame`: absolute sampled-frame position)."""

    obj_id: int
    frame: int
    box: list[float] | None = None
    mask: np.ndarray | None = None  # (H, W) bool
    points: list[tuple[float, float, int]] | None = None  # (x, y, 1 positive | 0 negative) in frame pixels


@dataclass
class TrackResult:
    frames: list[int]  # absolute positions, in the order they were propagated
    masks: np.ndarray  # (len(frames), H, W) bool
    scores: list[float]  # object presence probability per frame


class Tracker(Protocol):
    def segment(self, frame: np.ndarray, position: int, boxes: list[list[float]]) -> np.ndarray:
        """(len(boxes), H, W) masks of the boxes on one frame: what a detection covers, for matching."""
        ...

    def propagate(self, frames: np.ndarray, positions: list[int], prompts: list[Prompt],
                  reverse: bool = False) -> dict[int, TrackResult]:
        """Prompts all sit on one of `positions`; masks from there to the last frame (reverse: the first)."""
        ...
