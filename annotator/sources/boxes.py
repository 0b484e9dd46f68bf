"""Box-tube sources: HC-STVG (one person's boxes over a span, with a caption about them) and VidSTG (VidOR
trajectories of several subjects and objects, with captions about some of them). The boxes become the tracker's
prompts on the sampled frames (detections of each object's phrase); the `track` stage turns them into masks and
`link` into one object per phrase; the dataset's captions go to the `tag` stage as context."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from annotator import video
from annotator.phrases.spans import normalise
from annotator.records import Detection, Phrase, VideoInfo, VideoItem
from annotator.sources.ytvis import SourceError, reading


def read_hcstvg(annotation_file: str | Path, videos_root: str | Path, fps: float = 0.0,
                max_frames: int = 16) -> list[VideoItem]:
    """`{"<name>.mp4": {"st_frame", "img_num", "img_size": [h, w], "bbox": [[x, y, w, h] per frame from st_frame],
    "English" or "caption": "..."}}`; up to `max_frames` annotated frames, evenly spread, are sampled."""
    path = Path(annotation_file)
    with reading(path, "an HC-STVG annotation file"):
        data = json.loads(path.read_text())
        assert isinstance(data, dict)
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


def read_vidstg(annotation_file: str | Path, videos_root: str | Path, fps: float = 0.0,
                max_frames: int = 16) -> list[VideoItem]:
    """VidSTG (VidOR-style annotations): a list of `{"vid", "frame_count", "fps", "width", "height",
    "subject/objects": [{"tid", "category"}], "trajectories": [[{"tid", "bbox": {"xmin", "ymin", "xmax",
    "ymax"}}] per frame], "captions": [{"target_id", "description"}]}`; videos are `<videos_root>/<vid>.mp4`.
    Each tid is one phrase (its caption's description when it has one, else its category) whose boxes on up to
    `max_frames` evenly spread annotated frames are tracker prompts."""
    path = Path(annotation_file)
    with reading(path, "a VidSTG annotation file"):
        data = json.loads(path.read_text())
        entries = data if isinstance(data, list) else list(data.values())
        assert all(isinstance(e, dict) for e in entries)
    items = []
    for entry in entries:
        try:
            name, objects = str(entry["vid"]), entry["subject/objects"]
            trajectories = entry["trajectories"]
        except (KeyError, TypeError) as exc:
            raise SourceError(f"{path}: an entry lacks {exc}") from None
        file = Path(videos_root) / f"{name}.mp4"
        try:
            meta = video.probe(file)
        except video.VideoError as exc:
            raise SourceError(f"{path}: {name}: {exc}") from None
        annotated = [f for f, boxes in enumerate(trajectories[: meta.num_frames]) if boxes]
        if not annotated:
            raise SourceError(f"{path}: {name} has no annotated frame")
        chosen = np.rint(np.linspace(0, len(annotated) - 1, min(max_frames, len(annotated)))).astype(int)
        picks = sorted({annotated[int(i)] for i in chosen})
        info = VideoInfo(width=meta.width, height=meta.height, fps=fps or meta.fps, num_frames=meta.num_frames,
                         frame_indices=picks, keyframes=list(range(len(picks))))
        described = {int(c["target_id"]): str(c["description"]).strip() for c in entry.get("captions", [])}
        item = VideoItem(re.sub(r"[^A-Za-z0-9_-]+", "_", name), str(file), info=info,
                         caption=" ".join(dict.fromkeys(described.values())))
        phrase_of = {}
        for obj in sorted(objects, key=lambda o: int(o["tid"])):
            tid = int(obj["tid"])
            text = described.get(tid) or str(obj["category"]).replace("_", " ")
            phrase_of[tid] = len(item.phrases)
            item.phrases.append(Phrase(text, -1, -1, str(obj["category"]).replace("_", " ")))
        for position, frame in enumerate(picks):
            for box in trajectories[frame]:
                b = box["bbox"]
                item.detections.append(Detection(frame=position, phrase=phrase_of[int(box["tid"])],
                                                 box=[float(b["xmin"]), float(b["ymin"]), float(b["xmax"]),
                                                      float(b["ymax"])], score=1.0))
        items.append(item)
    return items


def _token_spans(caption: str, tokens: list[str]) -> list[tuple[int, int]]:
    """(start, end) of each token in the caption, found left to right (tokens are words of the caption)."""
    spans, at = [], 0
    for token in tokens:
        start = caption.find(token, at)
        if start < 0:
            start = caption.lower().find(token.lower(), at)
        if start < 0:
            raise SourceError(f"token {token!r} is not in the caption {caption!r}")
        spans.append((start, start + len(token)))
        at = start + len(token)
    return spans


def read_anet_entities(annotation_file: str | Path, videos_root: str | Path, fps: float = 0.0,
                       max_frames: int = 10) -> list[VideoItem]:
    """ActivityNet-Entities: `{"annotations": {"<vid>": {"segments": {"<k>": {"caption", "tokens",
    "timestamps": [start s, end s], "frame_ind": [...], "process_bnd_box": [[x0, y0, x1, y1]],
    "process_idx": [[token indices]], "process_clss": [[class]]}}}}}`: one item per segment, its caption already
    grounded (each box's phrase is its tokens' span). `frame_ind` counts the segment's `max_frames` (10) frames
    sampled evenly over its time span; each box prompts the tracker on its frame."""
    path = Path(annotation_file)
    with reading(path, "an ActivityNet-Entities file"):
        data = json.loads(path.read_text())
        videos = data.get("annotations", data)
        assert isinstance(videos, dict)
    items = []
    for vid, entry in sorted(videos.items()):
        file = Path(videos_root) / f"{vid}.mp4"
        try:
            meta = video.probe(file)
        except video.VideoError as exc:
            raise SourceError(f"{path}: {vid}: {exc}") from None
        rate = fps or meta.fps
        for key, seg in sorted(entry.get("segments", {}).items(), key=lambda kv: int(kv[0])):
            start, end = (float(t) for t in seg["timestamps"])
            times = np.linspace(start, end, max_frames, endpoint=False) + (end - start) / (2 * max_frames)
            picks = [min(meta.num_frames - 1, int(t * rate)) for t in times]
            caption = str(seg["caption"]).strip()
            info = VideoInfo(width=meta.width, height=meta.height, fps=rate, num_frames=meta.num_frames,
                             frame_indices=picks, keyframes=sorted({int(f) for f in seg.get("frame_ind", [])}))
            item = VideoItem(re.sub(r"[^A-Za-z0-9_-]+", "_", f"{vid}_seg{key}"), str(file), info=info,
                             caption=caption)
            spans = _token_spans(caption, [str(t) for t in seg["tokens"]])
            for box, idx, frame in zip(seg.get("process_bnd_box", []), seg.get("process_idx", []),
                                       seg.get("frame_ind", []), strict=True):
                s, e = spans[min(idx)][0], spans[max(idx)][1]
                phrase = next((i for i, p in enumerate(item.phrases) if (p.start, p.end) == (s, e)), None)
                if phrase is None:
                    phrase = len(item.phrases)
                    item.phrases.append(Phrase(caption[s:e], s, e, normalise(caption[s:e])))
                item.detections.append(Detection(frame=int(frame), phrase=phrase, box=[float(v) for v in box],
                                                 score=1.0))
            items.append(item)
    return items
