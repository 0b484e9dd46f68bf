"""Source datasets that already hold masks (and names) enter the same flow as videos: a pipeline's `source:`
lists their videos as inputs, and its `source` stage loads each one's frames and annotations by id."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from annotator.records import VideoItem
from annotator.sources.boxes import read_anet_entities, read_hcstvg, read_vidstg
from annotator.sources.images import read_coco_images
from annotator.sources.refs import read_mevis, read_refytvos
from annotator.sources.ytvis import SourceError, read_burst, read_ytvis

READERS: dict[str, Callable[..., list[VideoItem]]] = {
    "ytvis": read_ytvis, "burst": read_burst, "refytvos": read_refytvos, "mevis": read_mevis,
    "coco_images": read_coco_images, "hcstvg": read_hcstvg, "vidstg": read_vidstg, "anet_entities": read_anet_entities,
}
KINDS = tuple(READERS)


@functools.lru_cache(maxsize=4)
def _read(kind: str, annotations: str, frames_root: str, fps: float | None, mtime: float) -> dict[str, VideoItem]:
    if kind not in READERS:
        raise SourceError(f"unknown source kind {kind!r}; known: {', '.join(KINDS)}")
    extra = {"fps": fps} if fps else {}  # None: the format's own rate (6 for YouTube-VIS, the file's for videos)
    return {it.video_id: it for it in READERS[kind](annotations, frames_root, **extra)}


def read_source(kind: str, annotations: str, frames_root: str, fps: float | None = None) -> dict[str, VideoItem]:
    """video id -> record of every video of a source (read once per worker while the file is unchanged)."""
    path = Path(annotations)
    if not path.exists():
        raise SourceError(f"{annotations}: no such annotation file")
    return _read(kind, str(path), str(frames_root), fps, path.stat().st_mtime)


def source_ref(annotations: str, video_id: str) -> str:
    """The input path a source video travels under: the annotation file and the video's id."""
    return f"{annotations}#{video_id}"
