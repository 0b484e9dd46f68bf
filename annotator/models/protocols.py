"""Small protocols each model role implements, so stages can run with a real model, a tiny one or a fake."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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


@dataclass
class FrameMasks:
    """What a propagation gives on one frame: each object's mask and presence score."""

    position: int
    masks: dict[int, np.ndarray]  # obj_id -> (H, W) bool
    scores: dict[int, float]


class TrackSession(Protocol):
    """One window of frames, opened once: prompts added per object, propagated from a frame either way. Image
    features are computed once per frame of the session, however many propagations run over it."""

    positions: list[int]

    def add(self, prompts: list[Prompt]) -> None:
        """Prompts (boxes, masks or points) per object id; a later prompt of an object replaces its earlier one."""
        ...

    def propagate(self, start: int, reverse: bool = False,
                  objects: list[int] | None = None) -> Iterator[FrameMasks]:
        """From position `start` to the window's end (reverse: its beginning), for `objects` (default: all)."""
        ...

    def segment(self, position: int, boxes: list[list[float]]) -> np.ndarray:
        """(len(boxes), H, W) masks of boxes on one frame, for matching; adds no object."""
        ...


class Tracker(Protocol):
    def open(self, frames: np.ndarray, positions: list[int]) -> TrackSession:
        """A session over `frames` (T, H, W, 3) RGB at absolute sampled-frame `positions`."""
        ...


def collect(frames: Iterator[FrameMasks]) -> dict[int, TrackResult]:
    """A propagation's frames gathered per object (masks stacked column-major, as RLE encoding wants them)."""
    from annotator.masks import stack_column_major

    per: dict[int, tuple[list[int], list[np.ndarray], list[float]]] = {}
    for frame in frames:
        for obj_id, mask in frame.masks.items():
            got = per.setdefault(obj_id, ([], [], []))
            got[0].append(frame.position)
            got[1].append(mask)
            got[2].append(frame.scores[obj_id])
    return {i: TrackResult(frames=f, masks=stack_column_major(m), scores=s) for i, (f, m, s) in per.items()}
