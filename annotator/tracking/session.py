"""A `TrackSession` for trackers that answer whole propagations at once (the oracle tracker, test doubles):
prompts are kept per object and each propagation hands the tracker the frames from its start on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from annotator.models.protocols import FrameMasks, Prompt, TrackResult

Propagate = Callable[[np.ndarray, list[int], list[Prompt], bool], dict[int, TrackResult]]
Segment = Callable[[np.ndarray, int, list[list[float]]], np.ndarray]


class PromptSession:
    def __init__(self, frames: np.ndarray, positions: list[int], propagate: Propagate, segment: Segment) -> None:
        self.frames = frames
        self.positions = list(positions)
        self._propagate = propagate
        self._segment = segment
        self.prompts: dict[int, Prompt] = {}

    def add(self, prompts: list[Prompt]) -> None:
        for p in prompts:
            if p.frame not in self.positions:
                raise ValueError(f"prompt on frame {p.frame}, outside this session's frames")
            self.prompts[p.obj_id] = p

    def propagate(self, start: int, reverse: bool = False, objects: list[int] | None = None) -> Iterator[FrameMasks]:
        ids = list(self.prompts) if objects is None else objects
        local = self.positions.index(start)
        span = slice(0, local + 1) if reverse else slice(local, None)
        results = self._propagate(self.frames[span], self.positions[span], [self.prompts[i] for i in ids], reverse)
        order = self.positions[span][::-1] if reverse else self.positions[span]
        for position in order:
            found = {i: r.frames.index(position) for i, r in results.items() if position in r.frames}
            yield FrameMasks(position, {i: results[i].masks[k] for i, k in found.items()},
                             {i: results[i].scores[k] for i, k in found.items()})

    def segment(self, position: int, boxes: list[list[float]]) -> np.ndarray:
        return self._segment(self.frames[self.positions.index(position)], position, boxes)
