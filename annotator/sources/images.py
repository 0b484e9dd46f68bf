"""Images as one-frame videos: a COCO instances file (masks as RLE or polygons) or a folder of images (no objects:
they go through the raw-video flow's detect and track stages instead)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from annotator import masks
from annotator.records import LinkedObject, MaskTrack, Phrase, Track, VideoInfo, VideoItem
from annotator.sources.ytvis import SourceError, reading


def read_coco_images(annotation_file: str | Path, images_root: str | Path, fps: float = 1.0) -> list[VideoItem]:
    path = Path(annotation_file)
    with reading(path, "a COCO instances file"):
        data = json.loads(path.read_text())
        images = {im["id"]: im for im in data["images"]}
        names = {c["id"]: c["name"] for c in data["categories"]}
    items: dict[int, VideoItem] = {}
    for image_id, im in images.items():
        h, w = int(im["height"]), int(im["width"])
        info = VideoInfo(width=w, height=h, fps=fps, num_frames=1, frame_indices=[0], keyframes=[0])
        video_id = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(im["file_name"]).stem)
        items[image_id] = VideoItem(video_id, str(Path(images_root) / im["file_name"]), info=info)
    for ann in data.get("annotations") or []:
        item = items.get(ann["image_id"])
        if item is None or item.info is None:
            raise SourceError(f"{path}: annotation {ann.get('id')} names unknown image {ann.get('image_id')}")
        rle = masks.from_coco(ann["segmentation"], item.info.height, item.info.width)
        phrase = len(item.phrases)
        name = names[ann["category_id"]]
        item.phrases.append(Phrase(name, -1, -1, name))
        track = MaskTrack(frames=[0], rles=[rle], scores=[1.0])
        item.tracks.append(Track(int(ann["id"]), phrase, 0, [], track, 0, 0, 1, 1.0))
        item.objects.append(LinkedObject(int(ann["id"]), phrase, [int(ann["id"])], track))
    return [items[i] for i in sorted(items)]
