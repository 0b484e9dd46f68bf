"""Box-tube sources: HC-STVG (one person's box per frame over a span, with a caption about them). The boxes become
the tracker's prompts on the sampled frames (detections of the person's phrase); the `track` stage turns them
into masks and `link` into one object; the dataset's caption goes to the `tag` stage as context."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from annotator import video
from annotator.records import Detection, Phrase, VideoInfo, VideoItem
from annotator.sources.ytvis import SourceError


def read_hcstvg(annotation_file: str | Path, videos_root: str | Path, fps: float = 0.0,
                max_frames: int = 16) -> list[VideoItem]:
    """`{"<name>.mp4": {"st_frame", "img_num", "img_size": [h, w], "bbox": [[x, y, w, h] per frame from st_frame],
    "English" or "caption": "..."}}`; up to `max_frames` annotated frames, evenly spread, are sampled."""
    path = Path(annotation_file)
    try:
        data = json.loads(path.read_text())
        assert isinstance(data, dict)
    except (OSError, ValueError, AssertionError) as exc:
        raise SourceError(f"{path}: not an HC-STVG annotation file ({type(exc).__name__}: {exc})") from None
    items = []
    for name, entry in sorted(data.items()):
        file = Path(videos_root) / name
        try:
            meta = video.probe(file)
            start, boxes = int(entry["st_frame"]), [list(map(float, b)) for b in entry["bbox"]]
        except (KeyError, TypeError, ValueError, video.VideoError) as exc:
            raise SourceError(f"{path}: {name}: {exc}") from None
        last = min(start + len(boxes), meta.num_frames)
        picks = sorted({int(v) for v in np.rint(np.linspace(start, last - 1, min(max_frames, last - start)))})
        info = VideoInfo(width=meta.width, height=meta.height, fps=fps or meta.fps, num_frames=meta.num_frames,
                         frame_indices=picks, keyframes=list(range(len(picks))))
        caption = str(entry.get("English") or entry.get("caption") or "").strip()
        item = VideoItem(re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem), str(file), info=info, caption=caption)
        item.phrases.append(Phrase("the person", -1, -1, "person"))
        for position, frame in enumerate(picks):
            x, y, w, h = boxes[frame - start]
            item.detections.append(Detection(frame=position, phrase=0, box=[x, y, x + w, y + h], score=1.0))
        items.append(item)
    return items
