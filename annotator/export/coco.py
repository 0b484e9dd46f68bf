"""Per-frame COCO instances: every sampled frame is an image; every visible object mask an annotation.

Images carry `video_id` and `frame_index` (source frame); annotations carry `track_id` (our object id),
never `instance_id`. `area` is the mask's pixel count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator import masks
from annotator.export.common import categories, category, exportable, frame_name, objects, write_json
from annotator.records import VideoItem


def coco_dict(items: list[VideoItem]) -> dict[str, Any]:
    items = exportable(items)
    cats = categories(items)
    videos, images, annotations = [], [], []
    image_ids: dict[tuple[str, int], int] = {}
    for vid, it in enumerate(items, start=1):
        assert it.info is not None
        videos.append({"id": vid, "name": it.video_id, "width": it.info.width, "height": it.info.height})
        for position, index in enumerate(it.info.frame_indices):
            image_ids[it.video_id, position] = len(images) + 1
            images.append({
                "id": len(images) + 1, "file_name": f"{it.video_id}/{frame_name(index)}", "width": it.info.width,
                "height": it.info.height, "video_id": vid, "frame_index": index,
            })
    for it, obj in objects(items):
        assert it.info is not None
        h, w = it.info.height, it.info.width
        for frame, counts in zip(obj.masks.frames, obj.masks.rles, strict=True):
            area = masks.area(counts, h, w)
            if area == 0:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_ids[it.video_id, frame],
                "category_id": cats[category(it, obj)], "segmentation": {"size": [h, w], "counts": counts},
                "area": area, "bbox": masks.bbox(counts, h, w), "iscrowd": 0, "track_id": obj.object_id,
            })
    return {
        "info": {"description": "annotator export (COCO instances, one image per sampled frame)"},
        "licenses": [],
        "videos": videos,
        "images": images,
        "categories": [{"id": i, "name": n, "supercategory": "object"} for n, i in cats.items()],
        "annotations": annotations,
    }


def write_coco(items: list[VideoItem], out: Path) -> Path:
    return write_json(out / "coco_instances.json", coco_dict(items))
