"""Referring-expression sources: Ref-YouTube-VOS (palette PNG masks) and MeViS (RLE masks in mask_dict.json).

Each object becomes one record object (its dataset id kept) whose phrase is its first referring expression (the
others are kept in order in the phrase list's norm text, joined with " / ", for the tagging prompt to see).
Frames are `<frames_root>/JPEGImages/<video>/<frame>.jpg`; a video's frame numbers are its files' own numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from annotator import masks
from annotator.records import LinkedObject, MaskTrack, Phrase, Track, VideoInfo, VideoItem
from annotator.sources.ytvis import SourceError, reading


def _video_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


def _meta(path: Path) -> dict:
    with reading(path, "a meta_expressions file"):
        videos = dict(json.loads(path.read_text())["videos"])
    return videos


def _record(name: str, frame_names: list[str], root: Path, fps: float) -> VideoItem:
    folder = root / "JPEGImages" / name
    first = folder / f"{frame_names[0]}.jpg"
    if not first.exists():
        raise SourceError(f"{first}: frame missing")
    with Image.open(first) as image:
        w, h = image.size
    numbers = [int(f) if f.isdigit() else i for i, f in enumerate(frame_names)]
    info = VideoInfo(width=w, height=h, fps=fps, num_frames=len(frame_names), frame_indices=numbers, keyframes=[0])
    return VideoItem(_video_id(name), str(folder), info=info)


def _add(item: VideoItem, object_id: int, expressions: list[str], stack: list[np.ndarray | None]) -> None:
    assert item.info is not None
    frames = [t for t, m in enumerate(stack) if m is not None and m.any()]
    rles = masks.encode_batch(np.stack([stack[t] for t in frames])) if frames else []
    phrase = len(item.phrases)
    item.phrases.append(Phrase(expressions[0], -1, -1, " / ".join(expressions)))
    track = MaskTrack(frames=frames, rles=list(rles), scores=[1.0] * len(frames))
    item.tracks.append(Track(object_id, phrase, frames[0] if frames else 0, [], track, frames[0] if frames else 0,
                             frames[-1] if frames else 0, len(frames), 1.0))
    item.objects.append(LinkedObject(object_id, phrase, [object_id], track))


def _expressions(video: dict, key: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for exp in video.get("expressions", {}).values():
        ids = exp[key] if isinstance(exp[key], list) else [exp[key]]
        for i in ids:
            out.setdefault(str(i), []).append(str(exp["exp"]).strip())
    return out


def read_refytvos(meta_expressions: str | Path, root: str | Path, fps: float = 6.0) -> list[VideoItem]:
    """Ref-YouTube-VOS: palette PNGs `<root>/Annotations/<video>/<frame>.png` whose pixel values are object ids."""
    meta_path, root = Path(meta_expressions), Path(root)
    items = []
    for name, video in sorted(_meta(meta_path).items()):
        frame_names = list(video["frames"])
        item = _record(name, frame_names, root, fps)
        palettes = []
        for f in frame_names:
            png = root / "Annotations" / name / f"{f}.png"
            palettes.append(np.array(Image.open(png)) if png.exists() else None)
        for obj, expressions in sorted(_expressions(video, "obj_id").items(), key=lambda kv: int(kv[0])):
            _add(item, int(obj), expressions, [p == int(obj) if p is not None else None for p in palettes])
        items.append(item)
    return items


def read_mevis(meta_expressions: str | Path, root: str | Path, fps: float = 6.0) -> list[VideoItem]:
    """MeViS: `mask_dict.json` next to the meta file maps each annotation id to one COCO RLE (or null) per frame;
    an expression names object ids and their annotation ids, in the same order."""
    meta_path, root = Path(meta_expressions), Path(root)
    try:
        mask_dict = json.loads((meta_path.parent / "mask_dict.json").read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{meta_path.parent / 'mask_dict.json'}: {exc}") from None
    items = []
    for name, video in sorted(_meta(meta_path).items()):
        frame_names = list(video["frames"])
        item = _record(name, frame_names, root, fps)
        assert item.info is not None
        h, w = item.info.height, item.info.width
        annotation_of: dict[str, str] = {}
        for exp in video.get("expressions", {}).values():
            for obj, anno in zip(exp["obj_id"], exp["anno_id"], strict=True):
                annotation_of.setdefault(str(obj), str(anno))
        for obj, expressions in sorted(_expressions(video, "obj_id").items(), key=lambda kv: int(kv[0])):
            rles = mask_dict.get(annotation_of[obj])
            if rles is None or len(rles) != len(frame_names):
                raise SourceError(f"{meta_path}: video {name} object {obj}: mask_dict has no mask per frame")
            stack = [masks.decode(masks.from_coco(r, h, w), h, w) if r else None for r in rles]
            _add(item, int(obj), expressions, stack)
        items.append(item)
    return items
