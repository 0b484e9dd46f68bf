"""YouTube-VIS 2019 JSON: one annotation per object with a segmentation per frame (None where absent).

`rle="uncompressed"` writes run-length lists, which ground-truth readers such as TrackEval require.
The key `instance_id` is never used (FiftyOne rejects it); our object id is `track_id`. Written video by video
(`YtvisExporter`), as COCO is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from annotator import masks
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, JsonObject, Rle, register_exporter
from annotator.export.common import categories, category, category_list, exportable, frame_name
from annotator.records import VideoItem
from annotator.rundir import RunDir

INFO = {"description": "annotator export (YouTube-VIS 2019 format)"}


def ytvis_video(item: VideoItem, vid: int, cats: dict[str, int], first_annotation: int,
                rle: Rle = "compressed") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One video's record and its objects' annotations, ids counted on from the previous videos'."""
    assert item.info is not None
    h, w, length = item.info.height, item.info.width, len(item.info.frame_indices)
    video = {"id": vid, "name": item.video_id, "width": w, "height": h, "length": length,
             "file_names": [f"{item.video_id}/{frame_name(i)}" for i in item.info.frame_indices]}
    annotations = []
    for offset, obj in enumerate(sorted(item.objects, key=lambda o: o.object_id)):
        segs: list[Any] = [None] * length
        boxes: list[Any] = [None] * length
        areas: list[Any] = [None] * length
        for frame, counts in zip(obj.masks.frames, obj.masks.rles, strict=True):
            area = masks.area(counts, h, w)
            if area == 0:
                continue  # absent: None, as YouTube-VIS writes it
            segs[frame] = masks.to_uncompressed(counts, h, w) if rle == "uncompressed" else {"size": [h, w],
                                                                                            "counts": counts}
            boxes[frame] = masks.bbox(counts, h, w)
            areas[frame] = area
        annotations.append({
            "id": first_annotation + offset, "video_id": vid, "category_id": cats[category(item, obj)],
            "segmentations": segs, "bboxes": boxes, "areas": areas, "iscrowd": 0,
            "height": h, "width": w, "length": 1, "track_id": obj.object_id})
    return video, annotations


def ytvis_stream(items: Iterable[VideoItem], cats: dict[str, int],
                 rle: Rle = "compressed") -> Iterator[tuple[VideoItem, dict[str, Any], list[dict[str, Any]]]]:
    """(item, video record, annotations) per exportable video, ids running on."""
    annotations = 0
    for vid, item in enumerate(exportable(items), start=1):
        video, anns = ytvis_video(item, vid, cats, annotations + 1, rle)
        annotations += len(anns)
        yield item, video, anns


def ytvis_dict(items: list[VideoItem], rle: Rle = "compressed") -> dict[str, Any]:
    """The whole file as one dict (small runs, tests); `write_ytvis` writes the same video by video."""
    cats = categories(exportable(items))
    videos, annotations = [], []
    for _, video, anns in ytvis_stream(items, cats, rle):
        videos.append(video)
        annotations.extend(anns)
    return {"info": INFO, "licenses": [], "videos": videos, "categories": category_list(cats),
            "annotations": annotations}


def write_ytvis(items: Iterable[VideoItem], out: Path, rle: Rle = "compressed",
                cats: dict[str, int] | None = None) -> Path:
    """`items` is read once when `cats` is given (else twice: a list)."""
    return write_ytvis_file(items, out / "ytvis.json", rle, cats)


def write_ytvis_file(items: Iterable[VideoItem], path: Path, rle: Rle = "compressed",
                     cats: dict[str, int] | None = None,
                     extra: Callable[[VideoItem, list[dict[str, Any]]], dict[str, Any]] | None = None) -> Path:
    """A YouTube-VIS file at `path`, video by video; `extra(item, its annotations)` adds members to each video's
    record (VideoGLaMM B's `dense_cap`)."""
    cats = categories(exportable(items)) if cats is None else cats
    with JsonObject(str(path), {"info": INFO, "licenses": []}, ["videos", "annotations"]) as writer:
        for item, video, anns in ytvis_stream(items, cats, rle):
            writer.add("videos", {**video, **extra(item, anns)} if extra else video)
            for annotation in anns:
                writer.add("annotations", annotation)
        return Path(writer.close({"categories": category_list(cats)}))


@register_exporter
class YtvisExporter(Exporter):
    name = "ytvis"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        cats = categories(run.iter_final_items())
        items = Counted(run.iter_final_items())
        return Exported([str(write_ytvis(items, out, options.rle, cats))], items.count)
