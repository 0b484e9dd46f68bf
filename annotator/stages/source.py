"""Source: one video of a source dataset (YouTube-VIS and its kin) loaded by id, with its objects and masks.

The first stage of a source pipeline: with no `--input`, its videos are the run's inputs (`path` = the
annotation file and the video's id). Its frames go into the run's frame store, as ingest's do, so every later
stage, the review page and the exports read them there. The objects keep the dataset's ids and masks exactly
(no re-segmentation); their phrases are the category names until a caption is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import cv2
from pydantic import Field

from annotator import frames
from annotator.records import VideoItem
from annotator.sources import read_source, source_ref
from annotator.stage import PerItemStage, Resources, register

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@register
@dataclass
class SourceStage(PerItemStage):
    name = "source"
    resources = Resources(cpus=0.25)
    batch_size = 8
    outputs = ("info", "caption", "caption_model", "phrases", "detections", "tracks", "objects")

    kind: Literal["ytvis", "burst", "refytvos", "mevis", "coco_images", "hcstvg", "vidstg", "anet_entities"] = "ytvis"
    annotations: str = ""  # the dataset's annotation file (ytvis JSON, or meta_expressions.json)
    frames_root: str = ""  # ytvis: where `file_names` are relative to; refytvos, mevis: the folder holding
    # JPEGImages/ (and Annotations/ for refytvos)
    fps: float | None = None  # None: the format's own (YouTube-VIS folders: 6; video files: their rate)
    frame_quality: Annotated[int, Field(ge=1, le=100)] = 95  # JPEG quality of the frame store

    def __post_init__(self) -> None:
        if not self.annotations or not self.frames_root:
            raise ValueError("a source needs annotations (the annotation file) and frames_root")

    def required_paths(self) -> dict[str, str]:
        return {"annotations": self.annotations, "frames_root": self.frames_root}

    def inputs(self) -> list[tuple[str, str]]:
        """(video_id, path) of every video of the source: the run's inputs when none are given."""
        records = read_source(self.kind, self.annotations, self.frames_root, self.fps)
        return [(vid, source_ref(self.annotations, vid)) for vid in sorted(records)]

    def process_item(self, item: VideoItem) -> VideoItem:
        video_id = item.path.rsplit("#", 1)[-1]
        records = read_source(self.kind, self.annotations, self.frames_root, self.fps)
        if video_id not in records:
            raise ValueError(f"{self.annotations} has no video {video_id!r}")
        record = records[video_id]
        assert record.info is not None
        info = dataclasses.replace(record.info)
        source = VideoItem(video_id, record.path, info=info)
        if self.run_root is not None:
            positions = list(range(len(info.frame_indices)))
            if Path(record.path).suffix.lower() in IMAGE_SUFFIXES:  # an image: a one-frame video
                image = cv2.imread(record.path)
                if image is None:
                    raise ValueError(f"{record.path}: not a readable image")
                clip = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None]
            else:
                clip = frames.read(source, positions, None)
            frames.write(self.run_root, video_id, info.frame_indices, clip, self.frame_quality)
            info.stored_frames = True
        item.info = info
        item.phrases, item.tracks = list(record.phrases), list(record.tracks)
        item.objects = [dataclasses.replace(o, provenance="dataset") for o in record.objects]  # masks as given
        item.detections, item.caption = list(record.detections), record.caption  # box sources: tracker prompts
        item.caption_model = f"dataset:{self.kind}" if record.caption else None
        return item
