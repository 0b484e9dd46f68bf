"""What every exporter shares: which items and objects to write, category ids, frame file names."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from annotator import storage
from annotator.records import LinkedObject, VideoItem


def exportable(items: Iterable[VideoItem]) -> Iterable[VideoItem]:
    """Items that finished without error, in video-id order: a list is sorted, a stream (`RunDir.iter_final_items`,
    already by video id) is filtered as it goes."""
    kept = (it for it in items if it.error is None and it.info is not None)
    return sorted(kept, key=lambda it: it.video_id) if isinstance(items, list) else kept


def category(item: VideoItem, obj: LinkedObject) -> str:
    return item.phrases[obj.phrase].norm


def categories(items: Iterable[VideoItem]) -> dict[str, int]:
    """Normalised phrase -> category id (1-based, alphabetical: stable across runs)."""
    names = sorted({category(it, o) for it in items for o in it.objects})
    return {name: i for i, name in enumerate(names, start=1)}


def category_list(cats: dict[str, int]) -> list[dict[str, Any]]:
    """The `categories` array of COCO and YouTube-VIS files."""
    return [{"id": i, "name": n, "supercategory": "object"} for n, i in cats.items()]


def frame_name(index: int) -> str:
    return f"{index:05d}.jpg"


def objects(items: Iterable[VideoItem]) -> Iterator[tuple[VideoItem, LinkedObject]]:
    for it in items:
        for obj in sorted(it.objects, key=lambda o: o.object_id):
            yield it, obj


def write_json(path: Path, data: Any) -> Path:
    text = json.dumps(data)
    storage.write_text(str(path), text)
    return path
