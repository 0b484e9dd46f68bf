"""Synthetic test videos with exact ground truth, made from real CC0 photos shipped with scikit-image.

Objects (elliptical cut-outs of the photos) are pasted on a background and moved; later objects are drawn
on top, so ground-truth masks are the *visible* pixels. The scene holds every hard case for a tracker:
an object entering mid-video, two objects crossing (one occluding the other), one leaving and re-entering.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage import data

H, W = 192, 256


@dataclass
class Sprite:
    gt_id: int
    name: str
    image: np.ndarray  # (h, w, 3)
    path: list[tuple[int, int] | None]  # top-left per frame, None = out of the scene


def _cutout(image: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    y0, x0, y1, x1 = box
    crop = image[y0:y1, x0:x1]
    if crop.ndim == 2:
        crop = np.stack([crop] * 3, axis=-1)
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def _ellipse(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - (h - 1) / 2) / (h / 2)) ** 2 + ((xx - (w - 1) / 2) / (w / 2)) ** 2 <= 1.0


def _line(t0: int, t1: int, start: tuple[int, int], end: tuple[int, int], frames: int) -> list:
    path: list[tuple[int, int] | None] = [None] * frames
    for t in range(t0, t1 + 1):
        a = (t - t0) / max(1, t1 - t0)
        path[t] = (round(start[0] + a * (end[0] - start[0])), round(start[1] + a * (end[1] - start[1])))
    return path


def sprites(frames: int = 40) -> list[Sprite]:
    """Drawn in this order (later on top). Positions are (x, y) of the top-left corner."""
    cat = _cutout(data.chelsea(), (20, 110, 280, 370), (48, 48))
    cup = _cutout(data.coffee(), (40, 150, 330, 450), (44, 44))
    face = _cutout(data.astronaut(), (20, 150, 230, 340), (40, 44))
    rocket = _cutout(data.rocket(), (60, 280, 420, 400), (28, 56))
    flag = _cutout(data.astronaut(), (20, 0, 200, 120), (40, 40))
    leave = _line(0, frames - 1, (180, 120), (180, 120), frames)
    for t in range(15, 24):  # out of view for 9 frames, back at another place
        leave[t] = None
    for t in range(24, frames):
        leave[t] = (140, 130)
    return [
        Sprite(1, "cat", cat, _line(0, frames - 1, (4, 8), (200, 20), frames)),
        Sprite(2, "rocket", rocket, _line(0, frames - 1, (20, 110), (200, 110), frames)),  # crosses under 3
        Sprite(3, "astronaut face", face, _line(0, frames - 1, (200, 110), (20, 110), frames)),
        Sprite(4, "cup", cup, _line(10, frames - 1, (-30, 60), (120, 60), frames)),  # enters from the left at 10
        Sprite(5, "flag", flag, leave),
    ]


def render(frames: int = 40) -> tuple[np.ndarray, dict[int, np.ndarray], list[str]]:
    """Video (T, H, W, 3) RGB, visible ground-truth masks per object id (T, H, W), and object names."""
    background = cv2.resize(data.rocket(), (W, H), interpolation=cv2.INTER_AREA)
    objs = sprites(frames)
    video = np.repeat(background[None], frames, axis=0).copy()
    full = {o.gt_id: np.zeros((frames, H, W), dtype=bool) for o in objs}
    for t in range(frames):
        for o in objs:
            if o.path[t] is None:
                continue
            x, y = o.path[t]
            h, w = o.image.shape[:2]
            shape = _ellipse(h, w)
            ys, xs = slice(max(0, y), min(H, y + h)), slice(max(0, x), min(W, x + w))
            sy, sx = slice(ys.start - y, ys.stop - y), slice(xs.start - x, xs.stop - x)
            m = shape[sy, sx]
            video[t, ys, xs][m] = o.image[sy, sx][m]
            full[o.gt_id][t, ys, xs] |= m
    visible = {}
    for i, o in enumerate(objs):
        above = np.zeros((frames, H, W), dtype=bool)
        for other in objs[i + 1 :]:
            above |= full[other.gt_id]
        visible[o.gt_id] = full[o.gt_id] & ~above
    return video, visible, [o.name for o in objs]


def write_video(path: Path, video: np.ndarray, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (video.shape[2], video.shape[1]))
    for frame in video:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def true_boxes(truth: dict[int, np.ndarray], t: int) -> dict[int, list[float]]:
    boxes = {}
    for gt_id, masks in truth.items():
        ys, xs = np.nonzero(masks[t])
        if len(xs):
            boxes[gt_id] = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    return boxes
