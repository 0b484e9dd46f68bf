"""Binary masks <-> COCO RLE via pycocotools, batched and column-major as pycocotools wants."""

from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def encode_batch(masks: np.ndarray) -> list[str]:
    """(N, H, W) bool/uint8 masks -> N compressed RLE `counts` strings, in one pycocotools call."""
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {masks.shape}")
    if len(masks) == 0:
        return []
    return [rle["counts"].decode("ascii") for rle in mask_utils.encode(column_major(masks))]


def column_major(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks -> the (H, W, N) Fortran-ordered uint8 array pycocotools encodes, without a strided copy.

    Its memory is (N, W, H) in C order: each mask transposed, which OpenCV does per frame with SIMD (numpy's
    `asfortranarray(moveaxis(...))` does the same copy element by element, about 4x slower).
    """
    n, h, w = masks.shape
    frames = masks.view(np.uint8) if masks.dtype == np.bool_ else masks.astype(np.uint8, copy=False)
    if frames.transpose(0, 2, 1).flags.c_contiguous:  # already column-major (the SAM2 adapter's output): no copy
        return frames.transpose(1, 2, 0)
    if not frames.flags.c_contiguous:
        frames = np.ascontiguousarray(frames)
    out = np.empty((n, w, h), dtype=np.uint8)
    for i in range(n):
        cv2.transpose(frames[i], out[i])
    return out.transpose(2, 1, 0)


def stack_column_major(frames: list[np.ndarray]) -> np.ndarray:
    """Stack (H, W) masks into (N, H, W) whose memory is column-major per mask, as `encode_batch` wants it.

    Frames that are column-major already (Fortran-ordered) are copied as they lie, with no transpose.
    """
    if not frames:
        raise ValueError("no masks to stack")
    h, w = frames[0].shape
    out = np.empty((len(frames), w, h), dtype=frames[0].dtype)
    for i, frame in enumerate(frames):
        out[i] = frame.T
    return out.transpose(0, 2, 1)


def encode(mask: np.ndarray) -> str:
    return encode_batch(mask[None])[0]


def _rle(counts: str, height: int, width: int) -> dict:
    return {"size": [height, width], "counts": counts.encode("ascii")}


def decode(counts: str, height: int, width: int) -> np.ndarray:
    """One RLE -> (H, W) bool mask."""
    return mask_utils.decode(_rle(counts, height, width)).astype(bool)


def decode_batch(counts: list[str], height: int, width: int) -> np.ndarray:
    """N RLEs -> (N, H, W) bool masks."""
    if not counts:
        return np.zeros((0, height, width), dtype=bool)
    stacked = mask_utils.decode([_rle(c, height, width) for c in counts])
    return np.moveaxis(stacked, -1, 0).astype(bool)


def area(counts: str, height: int, width: int) -> int:
    return int(mask_utils.area(_rle(counts, height, width)))


def bbox(counts: str, height: int, width: int) -> list[float]:
    """COCO [x, y, w, h] of a mask; all zeros for an empty mask."""
    return [float(v) for v in mask_utils.toBbox(_rle(counts, height, width))]


def union(counts: list[str], height: int, width: int) -> str:
    """Pixel-wise OR of several RLEs, without decoding them."""
    if len(counts) == 1:
        return counts[0]
    merged = mask_utils.merge([_rle(c, height, width) for c in counts], intersect=False)
    return merged["counts"].decode("ascii")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks; 0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def to_uncompressed(counts: str, height: int, width: int) -> dict:
    """Compressed RLE -> COCO *uncompressed* RLE (`counts` as a list of run lengths, column-major)."""
    flat = decode(counts, height, width).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]  # RLE always starts with a run of zeros
    return {"size": [height, width], "counts": runs}


def from_coco(segmentation: dict | list, height: int, width: int) -> str:
    """Any COCO segmentation (compressed or uncompressed RLE, polygons) -> compressed counts string."""
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        return counts if isinstance(counts, str) else counts.decode("ascii")
    return rle["counts"].decode("ascii")
