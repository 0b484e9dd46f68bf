"""VideoGLaMM formats A and B, read back with nothing but the rules of VideoGLaMM's loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator import masks
from annotator.export.videoglamm import write_format_a, write_format_b
from annotator.records import VideoItem
from annotator.sources.ytvis import read_ytvis
from tests.export.ytvis_fixture import make_ytvis_gt
from tests.synthetic import H, W

CAPTION = "A cat watches the rocket and an astronaut face while a cup and a flag pass a sign."
TAG = re.compile(r"\[([^\]]+)\]\((\d+(?:,\s*\d+)*)\)")


def captioned(items: list[VideoItem]) -> list[VideoItem]:
    """Give the masks-only records a caption whose phrases name their objects."""
    for item in items:
        item.caption = CAPTION
        for phrase in item.phrases:
            start = CAPTION.index(phrase.norm)
            phrase.start, phrase.end, phrase.text = start, start + len(phrase.norm), phrase.norm
    return items


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[VideoItem]:
    root = tmp_path_factory.mktemp("vg")
    path, frames_root, _ = make_ytvis_gt(root)
    return captioned(read_ytvis(path, frames_root))


def our_mask(item: VideoItem, object_id: int, position: int) -> np.ndarray:
    obj = next(o for o in item.objects if o.object_id == object_id)
    if position not in obj.masks.frames:
        return np.zeros((H, W), dtype=bool)
    return masks.decode(obj.masks.rles[obj.masks.frames.index(position)], H, W)


@pytest.mark.parametrize("cap", [4, None])
def test_format_a_reads_back_by_the_loader_rules(items: list[VideoItem], tmp_path: Path, cap: int | None) -> None:
    assert write_format_a(items, tmp_path, split="train", max_phrases=cap) == 2
    base = tmp_path / "vidstg_gcg"
    for item in items:
        caption = json.loads((base / "train_captions" / f"{item.video_id}.json").read_text())["caption"]
        tags = TAG.findall(caption)
        assert len(tags) == (cap or 6)
        assert TAG.sub(lambda m: m.group(1), caption) == CAPTION  # un-tagged phrases keep their text
        assert [t[0] for t in tags] == ["cat", "rocket", "astronaut face", "cup", "flag", "sign"][: cap or 6]
        answer = TAG.sub(lambda m: f"<p> {m.group(1)} </p> [SEG]", caption)
        ids = [int(t[1].split(",")[0]) for t in tags]  # the loader uses the first id of a phrase
        folder = base / "train" / item.video_id
        frames = sorted((folder / "frames").iterdir())
        assert len(frames) == len(item.info.frame_indices) and "." not in item.video_id
        assert answer.count("[SEG]") == len(ids) == len(list((folder / "masks").iterdir()))
        for object_id in ids:
            for position, frame in enumerate(frames):
                mask_file = folder / "masks" / f"{object_id:03d}" / frame.name
                loaded = np.asarray(Image.open(mask_file)) / 255.0
                assert loaded.shape == (H, W) and set(np.unique(loaded)) <= {0.0, 1.0}
                assert np.array_equal(loaded.astype(bool), our_mask(item, object_id, position))


def test_format_b_token_positions_and_masks(items: list[VideoItem], tmp_path: Path) -> None:
    path = write_format_b(items, tmp_path, split="val", max_phrases=4)
    assert path == tmp_path / "video_gcg" / "instruction_data" / "val.json"
    data = json.loads(path.read_text())
    annotations = {a["id"]: a for a in data["annotations"]}
    for record, item in zip(data["videos"], items, strict=True):
        dense = record["dense_cap"]
        words = dense["caption"].split(" ")
        assert [words[i] for i in dense["token_pos"]] == ["cat", "rocket", "face", "cup"]
        assert len(dense["mask_id"]) == len(dense["token_pos"]) == 4
        for mask_id in dense["mask_id"]:
            ann = annotations[mask_id]
            object_id = dense["v_id2o_id"][str(mask_id)]
            assert ann["video_id"] == record["id"] and ann["track_id"] == object_id
            for position, seg in enumerate(ann["segmentations"]):
                got = masks.decode(seg["counts"], H, W) if seg else np.zeros((H, W), dtype=bool)
                assert np.array_equal(got, our_mask(item, object_id, position))
