"""GLaMM's GranD-f image GCG layout, one image per video (its first sampled frame where every object is visible
is preferred, else the frame with most objects): `grandf.json` is a list of

    {"file_name": "<video_id>/<frame:05d>.jpg", "height": H, "width": W, "caption": "...",
     "groundings": {"<phrase>": {"token_positives": [start, end], "rle_masks": [{"size": [H, W], "counts": "..."}]}}}

`caption[start:end]` is the phrase (character offsets); each phrase's mask is its object's mask on that frame
(COCO RLE). Images are written under `images/` with the same `file_name`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from annotator import frames, masks, storage
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, register_exporter, spooled
from annotator.export.common import exportable, frame_name
from annotator.records import VideoItem
from annotator.rundir import RunDir


def best_position(item: VideoItem) -> int | None:
    """The first sampled frame where the most objects have a non-empty mask."""
    assert item.info is not None
    h, w = item.info.height, item.info.width
    counts = [0] * len(item.info.frame_indices)
    for obj in item.objects:
        for f, rle in zip(obj.masks.frames, obj.masks.rles, strict=True):
            counts[f] += masks.area(rle, h, w) > 0
    return max(range(len(counts)), key=lambda p: (counts[p], -p)) if any(counts) else None


def grandf_entries(items: Iterable[VideoItem]) -> Iterator[tuple[VideoItem, int, dict[str, Any]]]:
    """(item, frame position, entry) per exportable video with a caption and a visible object."""
    for item in exportable(items):
        position = best_position(item)
        if position is None or not item.caption:
            continue
        assert item.info is not None
        h, w = item.info.height, item.info.width
        groundings: dict[str, Any] = {}
        for obj in sorted(item.objects, key=lambda o: item.phrases[o.phrase].start):
            if position not in obj.masks.frames:
                continue
            rle = obj.masks.rles[obj.masks.frames.index(position)]
            if not masks.area(rle, h, w):
                continue
            phrase = item.phrases[obj.phrase]
            key = phrase.text if phrase.text not in groundings else f"{phrase.text} ({obj.object_id})"
            groundings[key] = {"token_positives": [phrase.start, phrase.end],
                               "rle_masks": [{"size": [h, w], "counts": rle}], "object_id": obj.object_id}
        name = f"{item.video_id}/{frame_name(item.info.frame_indices[position])}"
        yield item, position, {"file_name": name, "height": h, "width": w, "caption": item.caption,
                               "groundings": groundings}


def write_grandf(items: Iterable[VideoItem], out: Path, run_root: str | None = None) -> Path:
    """The image and the entry of each video as it comes; the list is spooled and appears whole at the end."""
    path = out / "grandf.json"
    with spooled(str(path)) as handle:
        handle.write("[")
        for n, (item, position, entry) in enumerate(grandf_entries(items)):
            image = frames.read(item, [position], run_root)[0]
            storage.write_bytes(str(out / "images" / entry["file_name"]), frames.encode_jpeg(image, 95))
            handle.write(("," if n else "") + json.dumps(entry))
        handle.write("]")
    return path


@register_exporter
class GrandfExporter(Exporter):
    name = "grandf"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        items = Counted(run.iter_final_items())
        return Exported([str(write_grandf(items, out, run_root=run.root))], items.count)
