"""CVAT XML, both ways: export for teams that review in CVAT, and their edits back as review decisions.

`cvat` writes one CVAT-for-video-1.1 task per video (`<out>/<video_id>/annotations.xml`): a `<track>` per object
(its id is our object id, its label the phrase's category, the phrase text in a `phrase` attribute) holding a
`<mask>` on every sampled frame where the object is visible, frame numbers being source frame indices, masks in
CVAT's RLE (row-major runs over the mask's bounding box, starting with background). `cvat-images` writes the
same masks as CVAT-for-images-1.1 (one `<image>` per sampled frame, the frame JPEG in `images/`, the track id in
a `track_id` attribute): the layout Datumaro's CVAT importer reads (it cannot read masks inside tracks).

`import_decisions` reads either layout back and appends what changed as decisions by `cvat-import`: a changed
phrase or label renames, a deleted track drops, changed masks replace the object's masks exactly.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from annotator import frames, masks, storage
from annotator.export.base import Counted, Exported, Exporter, ExportOptions, register_exporter
from annotator.export.common import category, exportable
from annotator.records import LinkedObject, VideoItem
from annotator.review.store import Decision
from annotator.rundir import RunDir

FORMATS = ("cvat", "cvat-images")


class CvatImportError(ValueError):
    """The file is not a CVAT XML this run can take decisions from."""


def cvat_rle(mask: np.ndarray) -> tuple[str, int, int, int, int] | None:
    """(rle, left, top, width, height) of a (H, W) mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    left, top, right, bottom = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    flat = mask[top:bottom + 1, left:right + 1].reshape(-1).astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [len(flat)]]))
    counts = ([0] if flat[0] else []) + runs.tolist()
    return ",".join(map(str, counts)), left, top, right - left + 1, bottom - top + 1


def from_cvat_rle(rle: str, left: int, top: int, width: int, height: int, h: int, w: int) -> np.ndarray:
    flat = np.zeros(width * height, bool)
    at, value = 0, False
    for count in (int(c) for c in rle.split(",")):
        flat[at:at + count] = value
        at, value = at + count, not value
    out = np.zeros((h, w), bool)
    out[top:top + height, left:left + width] = flat.reshape(height, width)
    return out


def _meta(root: ET.Element, item: VideoItem, mode: str, labels: list[str], size: int) -> None:
    assert item.info is not None
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for key, value in (("id", "1"), ("name", item.video_id), ("size", str(size)), ("mode", mode),
                       ("overlap", "0"), ("start_frame", "0"), ("stop_frame", str(max(0, size - 1)))):
        ET.SubElement(task, key).text = value
    labels_el = ET.SubElement(task, "labels")
    for name in labels:
        label = ET.SubElement(labels_el, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "mask"
        attributes = ET.SubElement(label, "attributes")
        for attr in ("phrase", "track_id") if mode == "annotation" else ("phrase",):
            a = ET.SubElement(attributes, "attribute")
            ET.SubElement(a, "name").text = attr
            ET.SubElement(a, "input_type").text = "text"
    size_el = ET.SubElement(task, "original_size")
    ET.SubElement(size_el, "width").text = str(item.info.width)
    ET.SubElement(size_el, "height").text = str(item.info.height)
    ET.SubElement(ET.SubElement(meta, "subsets"), "subset").text = "default"
    ET.SubElement(meta, "source").text = item.path


def _mask_el(parent: ET.Element, mask: np.ndarray, **attrs: str) -> bool:
    rle = cvat_rle(mask)
    if rle is None:
        return False
    counts, left, top, width, height = rle
    ET.SubElement(parent, "mask", {**attrs, "rle": counts, "left": str(left), "top": str(top),
                                   "width": str(width), "height": str(height), "z_order": "0"})
    return True


def video_xml(item: VideoItem) -> ET.ElementTree:
    """CVAT for video 1.1: one track per object, frames numbered as in the source video."""
    assert item.info is not None
    info = item.info
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    _meta(root, item, "interpolation", sorted({category(item, o) for o in item.objects}), info.num_frames)
    for obj in sorted(item.objects, key=lambda o: o.object_id):
        track = ET.SubElement(root, "track", {"id": str(obj.object_id), "label": category(item, obj),
                                              "source": "manual" if obj.provenance != "machine" else "auto"})
        stack = masks.decode_batch(obj.masks.rles, info.height, info.width)
        last = -1
        for position, mask in zip(obj.masks.frames, stack, strict=True):
            index = info.frame_indices[position]
            if _mask_el(track, mask, frame=str(index), keyframe="1", outside="0", occluded="0"):
                ET.SubElement(track[-1], "attribute", {"name": "phrase"}).text = item.phrases[obj.phrase].text
                last = index
        if 0 <= last < info.num_frames - 1:  # the track ends here, not at the video's end
            ET.SubElement(track, "mask", {"frame": str(last + 1), "keyframe": "1", "outside": "1", "occluded": "0",
                                          "rle": "1", "left": "0", "top": "0", "width": "1", "height": "1",
                                          "z_order": "0"})
    return ET.ElementTree(root)


def images_xml(item: VideoItem) -> ET.ElementTree:
    """CVAT for images 1.1: one image per sampled frame, each object's mask with its track id."""
    assert item.info is not None
    info = item.info
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    _meta(root, item, "annotation", sorted({category(item, o) for o in item.objects}), len(info.frame_indices))
    per_frame: dict[int, list[tuple[LinkedObject, str]]] = defaultdict(list)
    for obj in item.objects:
        for position, rle in zip(obj.masks.frames, obj.masks.rles, strict=True):
            per_frame[position].append((obj, rle))
    for position, index in enumerate(info.frame_indices):
        image = ET.SubElement(root, "image", {"id": str(index), "name": image_name(index),
                                              "width": str(info.width), "height": str(info.height)})
        for obj, rle in sorted(per_frame[position], key=lambda p: p[0].object_id):
            if _mask_el(image, masks.decode(rle, info.height, info.width), label=category(item, obj),
                        source="auto", occluded="0"):
                ET.SubElement(image[-1], "attribute", {"name": "phrase"}).text = item.phrases[obj.phrase].text
                ET.SubElement(image[-1], "attribute", {"name": "track_id"}).text = str(obj.object_id)
    return ET.ElementTree(root)


def image_name(index: int) -> str:
    return f"frame_{index:06d}.jpg"


def write_cvat(items: Iterable[VideoItem], out: Path, layout: str = "cvat", run_root: str | None = None) -> int:
    """One folder per video under `out`, video by video; `cvat-images` also copies the sampled frames into
    `images/`. Returns how many folders were written."""
    written = 0
    for item in exportable(items):
        folder = out / item.video_id
        folder.mkdir(parents=True, exist_ok=True)
        tree = video_xml(item) if layout == "cvat" else images_xml(item)
        ET.indent(tree)
        path = folder / "annotations.xml"
        storage.write_bytes(str(path), ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True))
        if layout == "cvat-images":
            assert item.info is not None
            (folder / "images").mkdir(exist_ok=True)
            positions = list(range(len(item.info.frame_indices)))
            for position, frame in zip(positions, frames.read(item, positions, run_root), strict=True):
                storage.write_bytes(str(folder / "images" / image_name(item.info.frame_indices[position])),
                                    frames.encode_jpeg(frame, 95))
        written += 1
    return written


def pending_items(run_dir: str) -> Iterator[VideoItem]:
    """Items waiting for review, as a reviewer sees them (decisions in force applied): CVAT is a review tool."""
    from annotator.review.items import ReviewRun

    try:
        review = ReviewRun(run_dir)
    except ValueError:  # no review gate in this pipeline
        return
    for entry in review.queue():
        yield review.current(entry["video_id"])


class _Cvat(Exporter):
    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        items = Counted(itertools.chain(run.iter_final_items(), pending_items(run.root)))
        written = write_cvat(items, out, self.name, run_root=run.root)
        return Exported([str(out)], items.count, f"{written} annotation files, one folder per video")


@register_exporter
class CvatExporter(_Cvat):
    name = "cvat"


@register_exporter
class CvatImagesExporter(_Cvat):
    name = "cvat-images"


def read_tracks(path: str | Path) -> tuple[str, dict[int, dict[str, Any]]]:
    """(task name = video id, track id -> {label, phrase, masks: {source frame index: (H, W) mask}})."""
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CvatImportError(f"{path}: not readable CVAT XML ({exc})") from None
    name = root.findtext("meta/task/name") or root.findtext("meta/job/name")
    width, height = root.findtext("meta/task/original_size/width"), root.findtext("meta/task/original_size/height")
    if root.tag != "annotations" or not name or not width or not height:
        raise CvatImportError(f"{path}: not a CVAT 1.1 annotations file with a task name and original_size")
    h, w = int(height), int(width)
    tracks: dict[int, dict[str, Any]] = {}

    def add(track_id: int, label: str, frame: int, el: ET.Element) -> None:
        entry = tracks.setdefault(track_id, {"label": label, "phrase": None, "masks": {}})
        phrase = el.find("attribute[@name='phrase']")
        if phrase is not None and phrase.text:
            entry["phrase"] = phrase.text
        a = el.attrib
        entry["masks"][frame] = from_cvat_rle(a["rle"], int(a["left"]), int(a["top"]), int(a["width"]),
                                              int(a["height"]), h, w)

    for track in root.iter("track"):
        for el in track.iter("mask"):
            if el.get("outside") != "1":
                add(int(track.attrib["id"]), track.attrib["label"], int(el.attrib["frame"]), el)
    for image in root.iter("image"):
        for el in image.iter("mask"):
            track_id = el.find("attribute[@name='track_id']")
            if track_id is None or not (track_id.text or "").strip().isdigit():
                raise CvatImportError(f"{path}: a mask on image {image.get('id')} has no track_id attribute")
            add(int(track_id.text or 0), el.attrib["label"], int(image.attrib["id"]), el)
    return name, tracks


def decisions_for(item: VideoItem, tracks: dict[int, dict[str, Any]], reviewer: str) -> list[Decision]:
    """What the edited file changes about the item, as decisions."""
    assert item.info is not None
    info = item.info
    position = {index: p for p, index in enumerate(info.frame_indices)}
    out = []
    for obj in sorted(item.objects, key=lambda o: o.object_id):
        track = tracks.get(obj.object_id)
        if track is None:
            out.append(Decision(item.video_id, "drop", reviewer, obj.object_id, reason="track deleted in CVAT"))
            continue
        phrase = item.phrases[obj.phrase]
        if track["phrase"]:  # the phrase attribute says it all; the label is its category
            if track["phrase"] != phrase.text:
                out.append(Decision(item.video_id, "rename", reviewer, obj.object_id, {"text": track["phrase"]}))
        elif track["label"] != phrase.norm:
            out.append(Decision(item.video_id, "rename", reviewer, obj.object_id, {"text": track["label"]}))
        kept = sorted((position[f], m) for f, m in track["masks"].items() if f in position and m.any())
        new = masks.encode_batch(masks.stack_column_major([m for _, m in kept])) if kept else []
        old = dict(zip(obj.masks.frames, obj.masks.rles, strict=True))
        old = {p: r for p, r in old.items() if masks.area(r, info.height, info.width)}
        if dict(zip([p for p, _ in kept], new, strict=True)) != old:
            out.append(Decision(item.video_id, "fix_mask", reviewer, obj.object_id,
                                {"frames": [p for p, _ in kept], "rles": list(new), "scores": [1.0] * len(kept)}))
    return out


def import_decisions(run_dir: str, file: str, reviewer: str = "cvat-import") -> dict[str, int]:
    """Append the decisions an edited CVAT file implies for its video (task name = video id); counts by action."""
    from annotator.review.items import ReviewRun

    name, tracks = read_tracks(file)
    review = ReviewRun(run_dir)
    try:
        item = review.current(review.check_id(name))
    except LookupError:
        raise CvatImportError(f"{file}: task {name!r} is not an item of {run_dir}") from None
    unknown = sorted(set(tracks) - {o.object_id for o in item.objects})
    if unknown:
        raise CvatImportError(f"{file}: tracks {unknown} are not objects of {name} (new objects need a phrase: "
                              "add them in the review page)")
    counts: dict[str, int] = defaultdict(int)
    found = decisions_for(item, tracks, reviewer)
    for decision in found:
        review.current(name, decision)  # validated against what is in force, as the review server does
        counts[decision.action] += 1
    review.store.append_many(found)  # one part: the file's decisions count all together or not at all
    return dict(counts)
