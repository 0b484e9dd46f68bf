"""YouTube-VIS reader: a masks-only source enters the pipeline as records.

Accepts compressed RLE, uncompressed RLE and polygons. Each annotation becomes one object (its id kept)
whose phrase is its category name; there is no caption yet, so phrase spans are -1 until one is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from annotator import masks
from annotator.records import LinkedObject, MaskTrack, Phrase, Track, VideoInfo, VideoItem
from annotator.video import frame_number


class SourceError(ValueError):
    """A source file that does not follow its format; the message names the file and the problem."""


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Loading and indexing `path` as `what`: any failure (unreadable, not JSON, a missing key, a wrong type)
    becomes one `SourceError` line naming the file, what it should have been and what went wrong."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise SourceError(f"{path}: not {what} ({type(exc).__name__}: {exc})") from None


def read_ytvis(annotation_file: str | Path, frames_root: str | Path, fps: float = 6.0) -> list[VideoItem]:
    """Records for every video of a YouTube-VIS JSON; frames live under `frames_root/<file_names>`."""
    path = Path(annotation_file)
    with reading(path, "a YouTube-VIS file"):
        data = json.loads(path.read_text())
        videos = {v["id"]: v for v in data["videos"]}
        names = {c["id"]: c["name"] for c in data["categories"]}
        annotations = data.get("annotations") or []
    items: dict[int, VideoItem] = {}
    for vid, video in videos.items():
        files = video["file_names"]
        folder = files[0].split("/")[0]
        h, w = int(video["height"]), int(video["width"])
        numbers = [frame_number(f) for f in files]  # the files' own frame numbers, as the frame reader uses them
        if None in numbers or len(set(numbers)) != len(numbers) or numbers != sorted(numbers):
            numbers = list(range(len(files)))
        info = VideoInfo(width=w, height=h, fps=fps, num_frames=len(files), frame_indices=numbers,  # type: ignore[arg-type]
                         keyframes=[0])
        video_id = re.sub(r"[^A-Za-z0-9_-]+", "_", str(video.get("name") or folder))
        items[vid] = VideoItem(video_id=video_id, path=str(Path(frames_root) / folder), info=info)
    for ann in annotations:
        item = items.get(ann["video_id"])
        if item is None or item.info is None:
            raise SourceError(f"{path}: annotation {ann.get('id')} names unknown video {ann.get('video_id')}")
        h, w = item.info.height, item.info.width
        frames, rles = [], []
        for t, seg in enumerate(ann["segmentations"]):
            if seg:
                frames.append(t)
                rles.append(masks.from_coco(seg, h, w))
        name = names[ann["category_id"]]
        phrase = len(item.phrases)
        item.phrases.append(Phrase(text=name, start=-1, end=-1, norm=name))
        track = MaskTrack(frames=frames, rles=rles, scores=[float(ann.get("score", 1.0))] * len(frames))
        item.tracks.append(Track(
            track_id=int(ann["id"]), phrase=phrase, prompt_frame=frames[0] if frames else 0, prompt_box=[],
            masks=track, first_frame=frames[0] if frames else 0, last_frame=frames[-1] if frames else 0,
            visible_frames=len(frames), mean_score=1.0,
        ))
        item.objects.append(LinkedObject(object_id=int(ann["id"]), phrase=phrase, track_ids=[int(ann["id"])],
                                         masks=track))
    return [items[v] for v in sorted(items)]


def read_burst(annotation_file: str | Path, frames_root: str | Path, fps: float = 0.0) -> list[VideoItem]:
    """BURST: `{"category_names": {id: name}, "sequences": [{"dataset", "seq_name", "width", "height",
    "annotated_image_paths": [...], "segmentations": [{"<track id>": {"rle": "<COCO counts>"}} per annotated
    frame], "track_category_ids": {"<track id>": category id}}]}`; frames are
    `<frames_root>/<dataset>/<seq_name>/<image path>`. Each track becomes one object (its id kept)."""
    path = Path(annotation_file)
    with reading(path, "a BURST file"):
        data = json.loads(path.read_text())
        names = {int(k): v for k, v in data["category_names"].items()}
        sequences = data["sequences"]
    items = []
    for seq in sequences:
        h, w = int(seq["height"]), int(seq["width"])
        files = list(seq["annotated_image_paths"])
        numbers = [frame_number(f) for f in files]
        if None in numbers or len(set(numbers)) != len(numbers) or numbers != sorted(numbers):
            numbers = list(range(len(files)))
        folder = Path(frames_root) / str(seq["dataset"]) / str(seq["seq_name"])
        info = VideoInfo(width=w, height=h, fps=fps or float(seq.get("fps", 6) or 6), num_frames=len(files),
                         frame_indices=numbers, keyframes=[0])  # type: ignore[arg-type]
        item = VideoItem(re.sub(r"[^A-Za-z0-9_-]+", "_", f"{seq['dataset']}_{seq['seq_name']}"), str(folder),
                         info=info)
        per_track: dict[int, tuple[list[int], list[str]]] = {}
        for t, frame in enumerate(seq["segmentations"]):
            for track_id, seg in frame.items():
                got = per_track.setdefault(int(track_id), ([], []))
                got[0].append(t)
                got[1].append(masks.from_coco({"size": [h, w], "counts": seg["rle"]}, h, w))
        for track_id, (frames, rles) in sorted(per_track.items()):
            name = names[int(seq["track_category_ids"][str(track_id)])]
            phrase = len(item.phrases)
            item.phrases.append(Phrase(text=name, start=-1, end=-1, norm=name))
            track = MaskTrack(frames=frames, rles=rles, scores=[1.0] * len(frames))
            item.tracks.append(Track(track_id=track_id, phrase=phrase, prompt_frame=frames[0], prompt_box=[],
                                     masks=track, first_frame=frames[0], last_frame=frames[-1],
                                     visible_frames=len(frames), mean_score=1.0))
            item.objects.append(LinkedObject(object_id=track_id, phrase=phrase, track_ids=[track_id], masks=track))
        items.append(item)
    return items
