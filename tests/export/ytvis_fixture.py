"""A YouTube-VIS ground-truth file built from the synthetic CC0 scene, in every segmentation encoding."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from annotator import masks
from tests.synthetic import H, W, render

NAMES = {1: "cat", 2: "rocket", 3: "astronaut face", 4: "cup", 5: "flag"}


def rectangle(t: int) -> list[list[float]]:
    """An axis-aligned polygon (exactly representable) that moves one pixel per frame."""
    x0, y0, x1, y1 = 10 + t, 150, 60 + t, 180
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def make_ytvis_gt(root: Path, frames: int = 24) -> tuple[Path, Path, dict[tuple[int, int], list[np.ndarray | None]]]:
    """GT JSON, frames root, and the truth per (video id, annotation id): a mask or None per frame."""
    video, truth, _ = render(frames)
    videos, annotations, expected = [], [], {}
    for vid, (name, span) in enumerate((("scene_a", range(frames)), ("scene_b", range(4, frames - 4))), start=1):
        folder = root / "JPEGImages" / name
        folder.mkdir(parents=True)
        files = []
        for i, t in enumerate(span):
            cv2.imwrite(str(folder / f"{i * 5:05d}.jpg"), cv2.cvtColor(video[t], cv2.COLOR_RGB2BGR))
            files.append(f"{name}/{i * 5:05d}.jpg")
        videos.append({"id": vid, "width": W, "height": H, "length": len(files), "file_names": files})
        for gt_id, gt in truth.items():
            segs, want = [], []
            for t in span:
                m = gt[t]
                if not m.any():
                    segs.append(None)
                    want.append(None)
                elif gt_id in (1, 2):
                    segs.append({"size": [H, W], "counts": masks.encode(m)})
                    want.append(m)
                else:
                    segs.append(masks.to_uncompressed(masks.encode(m), H, W))
                    want.append(m)
            ann_id = vid * 10 + gt_id
            annotations.append({"id": ann_id, "video_id": vid, "category_id": gt_id, "segmentations": segs,
                                "areas": [None if s is None else int(w.sum()) for s, w in zip(segs, want, strict=True)],
                                "bboxes": [None] * len(segs), "iscrowd": 0, "height": H, "width": W, "length": 1})
            expected[vid, ann_id] = want
        poly_id = vid * 10 + 9
        polys = [rectangle(t) for t in span]
        annotations.append({"id": poly_id, "video_id": vid, "category_id": 6, "segmentations": polys,
                            "areas": [1500] * len(polys), "bboxes": [None] * len(polys), "iscrowd": 0,
                            "height": H, "width": W, "length": 1})
        expected[vid, poly_id] = [masks.decode(masks.from_coco(p, H, W), H, W) for p in polys]
    categories = [{"id": i, "name": n, "supercategory": "object"} for i, n in NAMES.items()]
    categories.append({"id": 6, "name": "sign", "supercategory": "object"})
    path = root / "train.json"
    path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": categories}))
    return path, root / "JPEGImages", expected
