"""Mask IoU and the one-to-one greedy pairing that the published GCG evaluations use.

Both references (GLaMM's `eval/gcg/evaluate.py`, VideoGLaMM's `eval_gcg_metrics.py`) pair masks the same way:
take the pair with the largest IoU still free, claim its row and column, repeat while a condition holds. numpy
decides their ties and NaNs, so this module keeps numpy's semantics on purpose: `argmax` takes the first maximum
in row-major order, and an IoU of two empty stacks is NaN (0 / 0), which `max` propagates. Removed rows and
columns are masked with -inf instead of deleted; the order of what remains, and so every tie, is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from annotator import masks


def stack_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean stacks of any shape, (H, W) or (T, H, W), summed over every pixel; NaN when both are
    empty everywhere (the references divide 0 by 0)."""
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return float(inter / union) if union else float("nan")


def iou_matrix(rows: Sequence[np.ndarray], cols: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(rows), len(cols)))
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            out[i, j] = stack_iou(a, b)
    return out


Accept = Callable[[tuple[int, int], float], bool]


def greedy_pairs(scores: np.ndarray, accept: Accept) -> list[tuple[int, int]]:
    """Pairs (row, col), best first, while `accept(index, value)` holds for the best pair left; the first
    refusal ends the walk (a NaN best pair is offered like any other, as numpy's argmax finds it first)."""
    left = np.array(scores, dtype=float, copy=True)
    pairs: list[tuple[int, int]] = []
    while left.size and len(pairs) < min(left.shape):
        r, c = (int(i) for i in np.unravel_index(np.argmax(left), left.shape))
        if not accept((r, c), float(left[r, c])):
            break
        pairs.append((r, c))
        left[r, :] = -np.inf
        left[:, c] = -np.inf
    return pairs


def positive(_: tuple[int, int], value: float) -> bool:
    """mIoU pairing: continue while the best IoU left is above 0 (a NaN left anywhere ends it, as in numpy)."""
    return value > 0


def matched_mean(iou: np.ndarray) -> float:
    """The reference mIoU of one sample: mean IoU over greedily paired masks (pred rows, gt columns), unmatched
    masks not counted, 0.0 when nothing pairs."""
    pairs = greedy_pairs(iou, positive)
    return float(np.mean([iou[p] for p in pairs])) if pairs else 0.0


def recall_matches(iou_gt_pred: np.ndarray, text_sim: np.ndarray, iou_threshold: float = 0.5,
                   sim_threshold: float = 0.5) -> list[tuple[int, int]]:
    """The references' recall pairing (gt rows, pred columns): best IoU first, stopping at the first best pair
    whose IoU or text similarity is under its threshold, even if a later pair would pass."""
    def admissible(index: tuple[int, int], value: float) -> bool:
        return not (value < iou_threshold or text_sim[index] < sim_threshold)

    return greedy_pairs(iou_gt_pred, admissible)


def stack(obj: dict, frames: Sequence[int], height: int, width: int) -> np.ndarray:
    """An object's masks on `frames` (source frame numbers) as a (T, H, W) stack; empty where it has none."""
    by_frame = dict(zip(obj["frame_indices"], obj["mask_rles"], strict=True))
    out = np.zeros((len(frames), height, width), bool)
    for t, frame in enumerate(frames):
        if frame in by_frame:
            mask = masks.decode(by_frame[frame], height, width)
            if mask.shape != (height, width):
                raise ValueError(f"a mask of frame {frame} is {mask.shape[1]}x{mask.shape[0]}, not {width}x{height}")
            out[t] = mask
    return out
