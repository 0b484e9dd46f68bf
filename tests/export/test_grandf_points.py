"""GranD-f and VideoMolmo-style points exports, read back with only their documented rules: spans index the caption
or answer, masks are the objects', every point lies inside its object's mask on its frame."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from tests.export.ytvis_fixture import make_ytvis_gt
from tests.helpers import export_rows, run_source
from tests.sources.test_masks_route import tagger


@pytest.fixture(scope="module")
def tagged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tagged")
    annotations, frames_root, _ = make_ytvis_gt(root / "src")
    result, _ = run_source("ytvis_masks.yaml", root / "run", annotations, frames_root, tagger=tagger)
    assert result.exit_code == 0, result.output
    return root / "run"


def export(run: Path, fmt: str, out: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run), "--format", fmt, "--out", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output


def test_grandf_spans_masks_and_images(tagged_run: Path, tmp_path: Path) -> None:
    export(tagged_run, "grandf", tmp_path)
    entries = json.loads((tmp_path / "grandf.json").read_text())
    objects = {(o["video_id"], o["object_id"]): o for o in export_rows(tagged_run, "objects")}
    assert sorted(e["file_name"].split("/")[0] for e in entries) == ["scene_a", "scene_b"]
    for entry in entries:
        video_id, frame = entry["file_name"].split("/")[0], int(Path(entry["file_name"]).stem)
        image = cv2.imread(str(tmp_path / "images" / entry["file_name"]))
        assert image.shape[:2] == (entry["height"], entry["width"])
        assert entry["groundings"]
        for phrase, grounding in entry["groundings"].items():
            start, end = grounding["token_positives"]
            assert entry["caption"][start:end] == re.sub(r" \(\d+\)$", "", phrase)
            (rle,) = grounding["rle_masks"]
            got = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
            obj = objects[(video_id, grounding["object_id"])]
            want = masks.decode(obj["mask_rles"][obj["frame_indices"].index(frame)], entry["height"], entry["width"])
            assert got.any() and np.array_equal(got, want)


def test_every_point_lies_inside_its_mask(tagged_run: Path, tmp_path: Path) -> None:
    export(tagged_run, "points", tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "points.jsonl").read_text().splitlines()]
    objects = {(o["video_id"], o["object_id"]): o for o in export_rows(tagged_run, "objects")}
    assert len(rows) == 2 and all(r["points"] for r in rows)
    for row in rows:
        assert "<p>" not in row["answer"] and "[SEG]" not in row["answer"]
        seen = set()
        for p in row["points"]:
            assert row["answer"][p["start"]:p["end"]] == p["phrase"]
            obj = objects[(row["video_id"], p["object_id"])]
            h, w = obj["height"], obj["width"]
            mask = masks.decode(obj["mask_rles"][obj["frame_indices"].index(p["frame_index"])], h, w)
            assert mask[p["y"], p["x"]], "the point is a pixel of the mask"
            assert p["time_s"] == round(p["frame_index"] / 6.0, 3), "YouTube-VIS frame folders run at 6 fps"
            assert (p["x_pct"], p["y_pct"]) == (round(100 * (p["x"] + 0.5) / w, 2), round(100 * (p["y"] + 0.5) / h, 2))
            seen.add((p["object_id"], p["frame_index"]))
        visible = {(i, f) for i in {p["object_id"] for p in row["points"]}
                   for f, r in zip(objects[(row["video_id"], i)]["frame_indices"],
                                   objects[(row["video_id"], i)]["mask_rles"], strict=True)
                   if masks.area(r, objects[(row["video_id"], i)]["height"], objects[(row["video_id"], i)]["width"])}
        assert seen == visible, "one point per object per frame where it is visible"
