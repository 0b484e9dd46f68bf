"""YouTube-VIS 2019 JSON: one annotation per object with a segmentation per frame (None where absent).

`rle="uncompressed"` writes run-length lists, which ground-truth readers such as TrackEval require.
The key `instance_id` is never used (FiftyOne rejects it); our object id is `track_id`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from annotator import masks
from annotator.export.common import categories, category, exportable, frame_name, objects, write_json
from annotator.records import VideoItem

Rle = Literal["compressed", "uncompressed"]


def ytvis_dict(items: list[VideoItem], rle: Rle = "compressed") -> dict[str, Any]:
    items = exportable(items)
    cats = categories(items)
    video_ids = {it.video_id: i for i, it in enumerate(items, start=1)}
    videos = [
        {
            "id": video_ids[it.video_id], "name": it.video_id, "width": it.info.width, "height": it.info.height,
            "length": len(it.info.frame_indices),
            "file_names": [f"{it.video_id}/{frame_name(i)}" for i in it.info.frame_indices],
        }
        for it in items
        if it.info is not None
    ]
    annotations = []
    for ann_id, (it, obj) in enumerate(objects(items), start=1):
        assert it.info is not None
        h, w, length = it.info.height, it.info.width, len(it.info.frame_indices)
        segs: list[Any] = [None] * length
        boxes: list[Any] = [None] * length
        areas: list[Any] = [None] * length
        for frame, counts in zip(obj.masks.frames, obj.masks.rles, strict=True):
            area = masks.area(counts, h, w)
            if area == 0:
                continue  # absent: None, as YouTube-VIS writes it
            compressed = {"size": [h, w], "counts": counts}
            segs[frame] = masks.to_uncompressed(counts, h, w) if rle == "uncompressed" else compressed
            boxes[frame] = masks.bbox(counts, h, w)
            areas[frame] = area
        annotations.append({
            "id": ann_id, "video_id": video_ids[it.video_id], "category_id": cats[category(it, obj)],
            "segmentations": segs, "bboxes": boxes, "areas": areas, "iscrowd": 0,
            "height": h, "width": w, "length": 1, "track_id": obj.object_id,
        })
    return {
        "info": {"description": "annotator export (YouTube-VIS 2019 format)"},
        "licenses": [],
        "videos": videos,
        "categories": [{"id": i, "name": n, "supercategory": "object"} for n, i in cats.items()],
        "annotations": annotations,
    }


def write_ytvis(items: list[VideoItem], out: Path, rle: Rle = "compressed") -> Path:
    return write_json(out / "ytvis.json", ytvis_dict(items, rle))
