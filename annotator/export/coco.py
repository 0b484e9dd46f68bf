"""Per-frame COCO instances: every sampled frame is an image; every visible object mask an annotation.

Images carry `video_id` and `frame_index` (source frame); annotations carry `track_id` (our object id),
never `instance_id`. `area` is the mask's pixel count. Written video by video (`CocoExporter`): categories come
from a first pass over the videos, then images and annotations are spooled as each video is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from annotator import masks
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, JsonObject, register_exporter
from annotator.export.common import categories, category, category_list, exportable, frame_name
from annotator.records import VideoItem
from annotator.rundir import RunDir

INFO = {"description": "annotator export (COCO instances, one image per sampled frame)"}
ARRAYS = ["videos", "images", "annotations"]


def coco_records(item: VideoItem, vid: int, cats: dict[str, int], first_image: int,
                 first_annotation: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """One video's `(array, record)` pairs, with ids counted on from the previous videos'."""
    assert item.info is not None
    h, w = item.info.height, item.info.width
    yield "videos", {"id": vid, "name": item.video_id, "width": w, "height": h}
    for position, index in enumerate(item.info.frame_indices):
        yield "images", {"id": first_image + position, "file_name": f"{item.video_id}/{frame_name(index)}",
                         "width": w, "height": h, "video_id": vid, "frame_index": index}
    annotation = first_annotation
    for obj in sorted(item.objects, key=lambda o: o.object_id):
        for frame, counts in zip(obj.masks.frames, obj.masks.rles, strict=True):
            area = masks.area(counts, h, w)
            if area == 0:
                continue
            yield "annotations", {
                "id": annotation, "image_id": first_image + frame, "category_id": cats[category(item, obj)],
                "segmentation": {"size": [h, w], "counts": counts}, "area": area, "bbox": masks.bbox(counts, h, w),
                "iscrowd": 0, "track_id": obj.object_id}
            annotation += 1


def _stream(items: Iterable[VideoItem], cats: dict[str, int]) -> Iterator[tuple[str, dict[str, Any]]]:
    counts = dict.fromkeys(ARRAYS, 0)
    for item in exportable(items):
        for array, record in coco_records(item, counts["videos"] + 1, cats, counts["images"] + 1,
                                          counts["annotations"] + 1):
            counts[array] += 1
            yield array, record


def coco_dict(items: list[VideoItem]) -> dict[str, Any]:
    """The whole file as one dict (small runs, tests); `write_coco` writes the same video by video."""
    cats = categories(exportable(items))
    data: dict[str, Any] = {"info": INFO, "licenses": [], **{a: [] for a in ARRAYS}}
    for array, record in _stream(items, cats):
        data[array].append(record)
    return {**data, "categories": category_list(cats)}


def write_coco(items: Iterable[VideoItem], out: Path, cats: dict[str, int] | None = None) -> Path:
    """`items` is read once when `cats` is given (else twice: a list)."""
    cats = categories(exportable(items)) if cats is None else cats
    with JsonObject(str(out / "coco_instances.json"), {"info": INFO, "licenses": []}, ARRAYS) as writer:
        for array, record in _stream(items, cats):
            writer.add(array, record)
        return Path(writer.close({"categories": category_list(cats)}))


@register_exporter
class CocoExporter(Exporter):
    name = "coco"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        cats = categories(run.iter_final_items())
        items = Counted(run.iter_final_items())
        path = write_coco(items, out, cats)
        return Exported([str(path)], items.count)
