"""A `Tracker` that answers with ground-truth masks, so the tracking logic can be tested exactly on CPU.

It identifies which ground-truth object a prompt means (best box or mask IoU on the prompt frame; for clicks,
the object holding every positive click and no negative one) and returns that object's true masks; an object
out of view has an empty mask and presence score 0.
"""

from __future__ import annotations

import numpy as np

from annotator.masks import iou as masks_iou
from annotator.models.protocols import Prompt, TrackResult
from annotator.tracking.session import PromptSession


def box_of(mask: np.ndarray) -> list[float] | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def box_iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class OracleTracker:
    def __init__(self, truth: dict[int, np.ndarray]) -> None:
        """`truth`: ground-truth object id -> (T, H, W) bool masks over the sampled frames."""
        self.truth = truth

    def identify(self, position: int, box: list[float] | None = None, mask: np.ndarray | None = None,
                 points: list[tuple[float, float, int]] | None = None) -> int | None:
        if points:
            return self._clicked(position, points)
        best, best_iou = None, 0.0
        for gt_id, masks in self.truth.items():
            gt = masks[position]
            if mask is not None:
                iou = masks_iou(mask, gt)
            else:
                gt_box = box_of(gt)
                iou = box_iou(box, gt_box) if box is not None and gt_box is not None else 0.0
            if iou > best_iou:
                best, best_iou = gt_id, iou
        return best

    def _clicked(self, position: int, points: list[tuple[float, float, int]]) -> int | None:
        """The object whose mask holds every positive click and no negative one (clicks imply an object)."""
        for gt_id, masks in self.truth.items():
            m = masks[position]
            inside = [bool(m[int(y), int(x)]) if 0 <= int(y) < m.shape[0] and 0 <= int(x) < m.shape[1] else False
                      for x, y, _ in points]
            if all(hit == bool(label) for hit, (*_, label) in zip(inside, points, strict=True)):
                return gt_id
        return None

    def _mask(self, gt_id: int | None, position: int) -> np.ndarray:
        any_masks = next(iter(self.truth.values()))
        return self.truth[gt_id][position] if gt_id is not None else np.zeros(any_masks.shape[1:], dtype=bool)

    def open(self, frames: np.ndarray, positions: list[int]) -> PromptSession:
        return PromptSession(frames, positions, self.propagate, self.segment)

    def segment(self, frame: np.ndarray, position: int, boxes: list[list[float]]) -> np.ndarray:
        masks = [self._mask(self.identify(position, box=b), position) for b in boxes]
        return np.stack(masks) if masks else np.zeros((0, *frame.shape[:2]), dtype=bool)

    def propagate(self, frames: np.ndarray, positions: list[int], prompts: list[Prompt],
                  reverse: bool = False) -> dict[int, TrackResult]:
        results = {}
        for p in prompts:
            gt_id = self.identify(p.frame, box=p.box, mask=p.mask, points=p.points)
            local = positions.index(p.frame)
            order = positions[local::-1] if reverse else positions[local:]
            masks = np.stack([self._mask(gt_id, f) for f in order])
            results[p.obj_id] = TrackResult(frames=list(order), masks=masks,
                                            scores=[1.0 if m.any() else 0.0 for m in masks])
        return results
