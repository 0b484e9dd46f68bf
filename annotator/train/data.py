"""The dataset as training samples: one per QA triplet of a run's Parquet export, frames from its frame store.

A sample holds T frames (chosen uniformly at random, seeded per sample), the conversation (question, then the
answer with `<p> … </p> [SEG]`) tokenized by the model's processor with the question masked out of the labels,
the frames as the mask decoder sees them, and the masks `[N_obj, T, H, W]` in `[SEG]` order. An answer with more
grounded phrases than `max_phrases` keeps the first ones (the rest lose their markup, not their words). A
triplet whose `[SEG]` count differs from its object ids is refused with an error naming it.
"""

from __future__ import annotations

import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from annotator import frames, masks
from annotator.records import VideoInfo, VideoItem
from annotator.rundir import RunDir

SEG, P_OPEN, P_CLOSE = "[SEG]", "<p>", "</p>"
SPECIAL = [SEG, P_OPEN, P_CLOSE]
GROUNDED = re.compile(r"<p>\s*(.*?)\s*</p>\s*\[SEG\]")


class SampleError(ValueError):
    """A triplet that cannot become a training sample (its [SEG] tokens and masks disagree...)."""


def cap_phrases(answer: str, limit: int) -> str:
    """Keep the first `limit` grounded phrases; later ones keep their words and lose `<p> … </p> [SEG]`."""
    count = 0

    def keep(match: re.Match) -> str:
        nonlocal count
        count += 1
        return match.group(0) if count <= limit else match.group(1)

    return GROUNDED.sub(keep, answer)


def plain(answer: str) -> str:
    """The answer without markup (what captioning metrics compare)."""
    return re.sub(r"\s+", " ", GROUNDED.sub(lambda m: m.group(1), answer)).strip()


@dataclass
class Record:
    video: dict[str, Any]
    qa: dict[str, Any]
    objects: list[dict[str, Any]]  # in [SEG] order


def load_records(run_dir: str) -> list[Record]:
    """Every current QA triplet of a run's export with its video row and its objects in [SEG] order."""
    run = RunDir(run_dir)
    videos = {r["video_id"]: r for r in run.read_export("videos").to_pylist()}
    objects = {(r["video_id"], r["object_id"]): r for r in run.read_export("objects").to_pylist()}
    out = []
    for qa in sorted(run.read_export("qa").to_pylist(), key=lambda r: (r["video_id"], r["qa_id"])):
        missing = [i for i in qa["object_ids"] if (qa["video_id"], i) not in objects]
        if missing:
            raise SampleError(f"{qa['video_id']}/{qa['qa_id']}: objects {missing} are not in the export")
        out.append(Record(videos[qa["video_id"]], qa, [objects[(qa["video_id"], i)] for i in qa["object_ids"]]))
    return out


class GcgDataset(Dataset):
    def __init__(self, run_dir: str, processor: Any, sam_processor: Any, num_frames: int = 4, max_phrases: int = 4,
                 seed: int = 0, records: Sequence[Record] | None = None, cache: int = 64) -> None:
        self.run_dir = run_dir
        if records is None:
            from annotator.train.stream import StreamingRecords

            records = StreamingRecords(run_dir)
        self.records = records
        self.processor = processor
        self.sam_processor = sam_processor
        self.num_frames = num_frames + num_frames % 2  # the VLM's video patching takes frames in pairs
        self.max_phrases = max_phrases
        self.seed = seed
        self.cache = cache  # samples kept decoded (a sample is a function of its index: its frames are seeded)
        self._cached: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.records)

    def positions(self, index: int) -> list[int]:
        """T sampled-frame positions, uniform at random, seeded by the sample (repeats when the video is short)."""
        n = len(self.records[index].video["frame_indices"])
        rng = random.Random(self.seed * 1_000_003 + index)
        if n >= self.num_frames:
            return sorted(rng.sample(range(n), self.num_frames))
        return sorted(rng.choices(range(n), k=self.num_frames))

    def frames(self, record: Record, positions: list[int]) -> np.ndarray:
        v = record.video
        info = VideoInfo(width=v["width"], height=v["height"], fps=v["fps"], num_frames=v["num_frames"],
                         frame_indices=v["frame_indices"], keyframes=[], stored_frames=True)
        return frames.read(VideoItem(v["video_id"], v["path"], info=info), positions, self.run_dir)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index in self._cached:
            self._cached.move_to_end(index)
            return self._cached[index]
        sample = self._build(index)
        if self.cache:
            self._cached[index] = sample
            while len(self._cached) > self.cache:
                self._cached.popitem(last=False)
        return sample

    def _build(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        qa, name = record.qa, f"{record.qa['video_id']}/{record.qa['qa_id']}"
        segs = qa["answer"].count(SEG)
        if segs != len(record.objects):
            raise SampleError(f"{name}: the answer has {segs} {SEG} tokens but {len(record.objects)} masks")
        answer = cap_phrases(qa["answer"], self.max_phrases)
        kept = record.objects[: answer.count(SEG)]
        positions = self.positions(index)
        clip = self.frames(record, positions)
        v = record.video
        h, w = v["height"], v["width"]
        gt = np.zeros((len(kept), len(positions), h, w), dtype=bool)
        for o, obj in enumerate(kept):
            by_frame = dict(zip(obj["frame_indices"], obj["mask_rles"], strict=True))
            for t, p in enumerate(positions):
                rle = by_frame.get(v["frame_indices"][p])
                if rle is not None:
                    gt[o, t] = masks.decode(rle, h, w)
        inputs = conversation(self.processor, clip, qa["question"], answer)
        sam = self.sam_processor(images=list(clip), return_tensors="pt")
        return {**inputs, "sam_pixel_values": sam["pixel_values"], "masks": torch.from_numpy(gt),
                "name": name, "answer": answer}


def conversation(processor: Any, clip: np.ndarray, question: str, answer: str | None) -> dict[str, torch.Tensor]:
    """Tokenized chat: the frames as a video and the question; with `answer`, labels on the answer tokens only."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    asked = processor(text=[prompt], videos=[list(clip)], return_tensors="pt")
    if answer is None:
        return _per_token(asked)
    eos = processor.tokenizer.eos_token or ""
    full = _per_token(processor(text=[prompt + answer + eos], videos=[list(clip)], return_tensors="pt"))
    labels = full["input_ids"].clone()
    labels[: asked["input_ids"].shape[1]] = -100  # the question is context, not a target
    return {**full, "labels": labels}


def _per_token(inputs: Any) -> dict[str, torch.Tensor]:
    """One sample's processor output with its per-token rows (ids, attention, token types) unbatched."""
    length = inputs["input_ids"].shape[1]
    return {k: v[0] if v.ndim == 2 and v.shape == (1, length) else v for k, v in inputs.items()}


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Pad per-token rows (ids with the pad id, labels with -100, the rest with 0); concatenate the vision
    tensors the VLM flattens across samples; masks and SAM frames stay lists."""
    length = max(len(b["input_ids"]) for b in batch)
    fill = {"input_ids": pad_id, "labels": -100}
    out: dict[str, Any] = {}
    for key, value in batch[0].items():
        if key in ("masks", "sam_pixel_values", "name", "answer"):
            continue
        if value.ndim == 1 and len(value) == len(batch[0]["input_ids"]):
            out[key] = torch.stack([torch.nn.functional.pad(b[key], (0, length - len(b[key])),
                                                            value=fill.get(key, 0)) for b in batch])
        else:
            out[key] = torch.cat([b[key] for b in batch])
    out["sam_pixel_values"] = [b["sam_pixel_values"] for b in batch]
    out["masks"] = [b["masks"] for b in batch]
    out["names"] = [b["name"] for b in batch]
    return out


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """Tensors (and lists of tensors) of a collated batch on `device`."""
    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            return [v.to(device) for v in value]
        return value

    return {k: move(v) for k, v in batch.items()}
