"""Known masks survive the Parquet export bit for bit, read back by pyarrow and by HF datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from annotator import masks
from annotator.export.parquet import tables, write_parquet
from annotator.records import (
    OBJECTS_SCHEMA,
    QA,
    ItemError,
    LinkedObject,
    MaskTrack,
    Phrase,
    VideoInfo,
    VideoItem,
)


def test_masks_round_trip_through_pyarrow_and_datasets(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    truth = rng.random((2, 4, 31, 47)) > 0.5  # object, frame, h, w
    info = VideoInfo(width=47, height=31, fps=10.0, num_frames=40, frame_indices=[0, 10, 20, 30], keyframes=[0, 2])
    objects = [
        LinkedObject(i + 1, i, [i + 1], MaskTrack([0, 1, 2, 3], masks.encode_batch(truth[i]), [0.5] * 4))
        for i in range(2)
    ]
    item = VideoItem(
        "vid", "/vid.mp4", info=info, caption="a cat and a dog",
        phrases=[Phrase("a cat", 0, 5, "cat"), Phrase("a dog", 10, 15, "dog")], objects=objects,
        qa=[QA("vid-0", "Q?", "<p> a cat </p> [SEG] and <p> a dog </p> [SEG]", [1, 2])],
    )
    failed = VideoItem("bad", "/bad.mp4", error=ItemError("ingest", "VideoError", "corrupt"))
    written = write_parquet(tables([item, failed], "test", "run1", {"ingest": "abc"}), str(tmp_path))
    table = pq.read_table(written["objects"])
    assert table.schema.equals(OBJECTS_SCHEMA)
    rows = table.to_pylist()
    assert [r["frame_indices"] for r in rows] == [[0, 10, 20, 30]] * 2
    for r, want in zip(rows, truth, strict=True):
        assert np.array_equal(masks.decode_batch(r["mask_rles"], r["height"], r["width"]), want)
    assert pq.read_table(written["videos"]).column("video_id").to_pylist() == ["vid"]

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(written["objects"]), split="train", cache_dir=str(tmp_path / "hf"))
    for r, want in zip(ds, truth, strict=True):
        assert np.array_equal(masks.decode_batch(r["mask_rles"], r["height"], r["width"]), want)
    qa = load_dataset("parquet", data_files=str(written["qa"]), split="train", cache_dir=str(tmp_path / "hf"))
    assert qa[0]["object_ids"] == [1, 2] and qa[0]["answer"].count("[SEG]") == 2
