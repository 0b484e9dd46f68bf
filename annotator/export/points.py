"""VideoMolmo-style points: each grounded object pointed at on every sampled frame where it is visible.

`points.jsonl` holds one line per QA triplet: {"video_id", "qa_id", "question", "answer" (markup removed),
"points": [{"object_id", "phrase", "start", "end", "frame_index", "time_s", "x", "y", "x_pct", "y_pct"}]}:
`answer[start:end]` is the phrase; `time_s` is the frame's time in the video (frame index / fps); (x, y) is a
pixel of the object's mask on that frame (its innermost one: the maximum of the distance to the mask's border),
`x_pct`/`y_pct` the same in percent of the width/height (VideoMolmo's 0-100 scale).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator import masks
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, register_exporter, spooled
from annotator.export.common import exportable
from annotator.records import VideoItem
from annotator.rundir import RunDir

GROUNDED = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]")


def inner_point(mask: np.ndarray) -> tuple[int, int] | None:
    """(x, y) of the mask pixel farthest from the mask's border (always inside the mask)."""
    if not mask.any():
        return None
    padded = np.pad(mask.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def plain_with_spans(answer: str) -> tuple[str, list[tuple[int, int]]]:
    text, spans, at = [], [], 0
    length = 0
    for m in GROUNDED.finditer(answer):
        text.append(answer[at:m.start()])
        length += m.start() - at
        spans.append((length, length + len(m.group(1))))
        text.append(m.group(1))
        length += len(m.group(1))
        at = m.end()
    text.append(answer[at:])
    return "".join(text), spans


def point_rows(items: Iterable[VideoItem]) -> Iterator[dict[str, Any]]:
    """One row per QA triplet, video by video."""
    for item in exportable(items):
        assert item.info is not None
        h, w = item.info.height, item.info.width
        by_id = {o.object_id: o for o in item.objects}
        for qa in item.qa:
            answer, spans = plain_with_spans(qa.answer)
            points = []
            for object_id, (start, end) in zip(qa.object_ids, spans, strict=True):
                obj = by_id[object_id]
                for f, rle in zip(obj.masks.frames, obj.masks.rles, strict=True):
                    point = inner_point(masks.decode(rle, h, w))
                    if point is None:
                        continue
                    x, y = point
                    points.append({"object_id": object_id, "phrase": answer[start:end], "start": start, "end": end,
                                   "frame_index": item.info.frame_indices[f],
                                   "time_s": round(item.info.frame_indices[f] / (item.info.fps or 1.0), 3),
                                   "x": x, "y": y,
                                   "x_pct": round(100 * (x + 0.5) / w, 2), "y_pct": round(100 * (y + 0.5) / h, 2)})
            yield {"video_id": item.video_id, "qa_id": qa.qa_id, "question": qa.question, "answer": answer,
                   "points": points}


def write_points(items: Iterable[VideoItem], out: Path) -> Path:
    path = out / "points.jsonl"
    with spooled(str(path)) as handle:
        for row in point_rows(items):
            handle.write(json.dumps(row) + "\n")
    return path


@register_exporter
class PointsExporter(Exporter):
    name = "points"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        items = Counted(run.iter_final_items())
        return Exported([str(write_points(items, out))], items.count)
