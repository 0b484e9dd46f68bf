"""The on-disk layouts VideoGLaMM's own loaders read (DESIGN §7).

Format A (`vidstg_gcg`/`hcstvg_gcg` loader), under `{root}/vidstg_gcg/`:
  `{split}_captions/{video_id}.json`         {"caption": "... [a man in red](1) holds [a cup](2) ..."}
  `{split}/{video_id}/frames/{name}.jpg`     sampled frames; sorted names = time order
  `{split}/{video_id}/masks/{id:03d}/{name}` the frame's mask, 0/255 PNG at frame size, same file name
Format B (`video_gcg` loader): `{root}/video_gcg/instruction_data/{split}.json`, YouTube-VIS JSON whose videos
each carry `dense_cap` = {caption, token_pos, mask_id, v_id2o_id}; `token_pos[i]` indexes
`caption.split(' ')` (the word holding the end of the i-th grounded phrase), `mask_id[i]` is the
annotation id of its mask, `v_id2o_id` maps annotation ids to our object ids.

Each grounded phrase is one object (the union of its tracks), so the loaders' "first id of a phrase"
rule sees the whole phrase. VideoGLaMM trains on at most 4 grounded phrases per answer: `max_phrases`
keeps the first N in caption order and un-tags the rest (their text stays, their markup goes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotator import frames, masks, storage
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, Rle, register_exporter
from annotator.export.common import categories, exportable, frame_name, write_json
from annotator.export.ytvis import write_ytvis_file
from annotator.records import LinkedObject, VideoItem
from annotator.rundir import RunDir


def grounded(item: VideoItem, max_phrases: int | None) -> list[LinkedObject]:
    """The objects the caption tags, in caption order, capped; masks-only records (no caption) have none."""
    if not item.caption:
        return []
    ordered = sorted((o for o in item.objects if item.phrases[o.phrase].start >= 0),
                     key=lambda o: item.phrases[o.phrase].start)
    return ordered[:max_phrases] if max_phrases is not None else ordered


def tagged_caption(item: VideoItem, objects: list[LinkedObject]) -> str:
    """`[phrase](id)` around each grounded phrase; everything else verbatim."""
    assert item.caption is not None
    parts, pos = [], 0
    for obj in objects:
        p = item.phrases[obj.phrase]
        parts += [item.caption[pos : p.start], f"[{p.text}]({obj.object_id})"]
        pos = p.end
    parts.append(item.caption[pos:])
    return "".join(parts)


def _write_png(path: Path, mask: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise ValueError(f"PNG encoding failed for {path}")
    storage.write_bytes(str(path), buf.tobytes())


def _jpegs(item: VideoItem, run_root: str | None) -> list[bytes]:
    """The sampled frames as JPEG: the frame store's bytes as they are, or the source decoded and encoded."""
    assert item.info is not None
    indices = item.info.frame_indices
    if frames.stored(item, run_root):
        assert run_root is not None
        try:
            return frames.read_jpegs(run_root, item.video_id, indices)
        except FileNotFoundError:
            pass  # frame store dropped: decode the source
    return [frames.encode_jpeg(f, 95) for f in frames.read(item, list(range(len(indices))), None)]


def write_format_a(items: Iterable[VideoItem], root: Path, split: str = "train", max_phrases: int | None = 4,
                   run_root: str | None = None) -> int:
    """Write format A, video by video; returns how many videos were written (those with at least one grounded
    phrase). With `run_root`, frames come from that run's frame store (copied, not re-encoded)."""
    base = root / "vidstg_gcg"
    written = 0
    for item in exportable(items):
        objects = grounded(item, max_phrases)
        if not objects or item.info is None:
            continue
        h, w = item.info.height, item.info.width
        folder = base / split / item.video_id
        by_object = {o.object_id: dict(zip(o.masks.frames, o.masks.rles, strict=True)) for o in objects}
        indices = item.info.frame_indices
        for position, (index, jpeg) in enumerate(zip(indices, _jpegs(item, run_root), strict=True)):
            name = frame_name(index)
            storage.write_bytes(str(folder / "frames" / name), jpeg)
            for object_id, rles in by_object.items():
                mask = masks.decode(rles[position], h, w) if position in rles else np.zeros((h, w), bool)
                _write_png(folder / "masks" / f"{object_id:03d}" / name, mask)
        write_json(base / f"{split}_captions" / f"{item.video_id}.json", {"caption": tagged_caption(item, objects)})
        written += 1
    return written


def dense_cap(item: VideoItem, annotations: list[dict[str, Any]], max_phrases: int | None) -> dict[str, Any]:
    """A video's `dense_cap`: its grounded phrases' word positions and annotation ids."""
    ann_ids = {a["track_id"]: a["id"] for a in annotations}
    objects = grounded(item, max_phrases)
    caption = item.caption or ""
    token_pos = [caption[: item.phrases[o.phrase].end - 1].count(" ") for o in objects]  # the phrase's last word
    return {"caption": caption, "token_pos": token_pos, "mask_id": [ann_ids[o.object_id] for o in objects],
            "v_id2o_id": {str(ann_ids[o.object_id]): o.object_id for o in objects}}


def write_format_b(items: Iterable[VideoItem], root: Path, split: str = "train", max_phrases: int | None = 4,
                   rle: Rle = "compressed", cats: dict[str, int] | None = None) -> Path:
    """Format B, video by video; `items` is read once when `cats` is given (else twice: a list)."""
    return write_ytvis_file(items, root / "video_gcg" / "instruction_data" / f"{split}.json", rle, cats,
                            lambda item, anns: {"dense_cap": dense_cap(item, anns, max_phrases)})


@register_exporter
class FormatAExporter(Exporter):
    name = "videoglamm-a"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        items = Counted(run.iter_final_items())
        count = write_format_a(items, out, options.split, options.max_phrases, run_root=run.root)
        return Exported([str(out / "vidstg_gcg")], items.count,
                        f"{count} of {items.count} videos have grounded phrases")


@register_exporter
class FormatBExporter(Exporter):
    name = "videoglamm-b"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        cats = categories(run.iter_final_items())
        items = Counted(run.iter_final_items())
        return Exported([str(write_format_b(items, out, options.split, options.max_phrases, options.rle, cats))],
                        items.count)
