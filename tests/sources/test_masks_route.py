"""The masks-only route end to end: a YouTube-VIS source (compressed RLE, uncompressed RLE and polygons), an LLM
(a fake server on 127.0.0.1) tagging the known ids, a GCG export whose masks are the source's bit for bit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from annotator import masks
from tests.export.ytvis_fixture import make_ytvis_gt
from tests.helpers import export_rows, run_source
from tests.synthetic import H, W


def tagger(body: dict) -> str:
    """Tags every listed object but the last of each video (which must then be dropped, not invented)."""
    listed = re.findall(r"^(\d+): (.+)$", body["messages"][-1]["content"] if isinstance(
        body["messages"][-1]["content"], str) else body["messages"][0]["content"], re.M)
    tags = [f"[the {name}]({oid})" for oid, name in listed[:-1]]
    return "In this clip " + ", then ".join(tags) + " move around."


def test_ytvis_masks_route_keeps_every_source_mask_exactly(tmp_path: Path) -> None:
    annotations, frames_root, expected = make_ytvis_gt(tmp_path / "src")
    result, _ = run_source("ytvis_masks.yaml", tmp_path / "run", annotations, frames_root,
                           "--set", "stages.tag.params.backoff_s=0.01", tagger=tagger)
    assert result.exit_code == 0, result.output
    videos = {v["video_id"]: v for v in export_rows(tmp_path / "run", "videos")}
    assert sorted(videos) == ["scene_a", "scene_b"]
    objects = {(o["video_id"], o["object_id"]): o for o in export_rows(tmp_path / "run", "objects")}
    qa = {q["video_id"]: q for q in export_rows(tmp_path / "run", "qa")}
    vid_of = {"scene_a": 1, "scene_b": 2}
    for video_id, row in qa.items():
        source_ids = sorted(a for v, a in expected if v == vid_of[video_id])
        assert row["object_ids"] == source_ids[:-1], "ids kept; the untagged last object is left out"
        assert row["answer"].count("[SEG]") == len(source_ids) - 1
        for object_id in row["object_ids"]:
            obj = objects[(video_id, object_id)]
            assert f"<p> {obj['phrase']} </p> [SEG]" in row["answer"] and obj["phrase"].startswith("the ")
            assert obj["provenance"] == "dataset", "the masks are the dataset's own"
            want = expected[vid_of[video_id], object_id]
            positions = [t for t, m in enumerate(want) if m is not None]
            frame_numbers = videos[video_id]["frame_indices"]
            assert obj["frame_indices"] == [frame_numbers[t] for t in positions]
            got = masks.decode_batch(obj["mask_rles"], H, W)
            assert np.array_equal(got, np.stack([want[t] for t in positions])), (video_id, object_id)
    assert {(v, o) for v, o in objects} == {(v, o) for v, row in qa.items() for o in row["object_ids"]}
