"""Small protocols each model role implements, so stages can run with a real model, a tiny one or a fake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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
class BoxHit:
    phrase: int  # index into the phrases the detector was given
    box: list[float]  # x0, y0, x1, y1 in image pixels
    score: float


class Detector(Protocol):
    def detect(self, image: np.ndarray, phrases: list[str]) -> list[BoxHit]: ...


@dataclass
class BoxPrompt:
    obj_id: int
    frame: int  # position in the frames given to the tracker
    box: list[float]


@dataclass
class TrackResult:
    frames: list[int]
    masks: np.ndarray  # (len(frames), H, W) bool
    scores: list[float]


class Tracker(Protocol):
    def track(self, frames: np.ndarray, prompts: list[BoxPrompt]) -> dict[int, TrackResult]:
        """Masks per object id, from each object's prompt frame onwards."""
        ...
