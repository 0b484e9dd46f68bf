"""Images (a COCO instances file, RLE and polygon masks) as one-frame videos through the masks-only route, then
GranD-f: masks bit-identical to the source, spans into the caption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from tests.helpers import export_rows, run_source
from tests.sources.formats import write_coco_images
from tests.sources.test_masks_route import tagger
from tests.synthetic import H, W


def test_coco_images_become_one_frame_gcg_samples(tmp_path: Path) -> None:
    annotations, expected = write_coco_images(tmp_path / "src")
    runner = CliRunner()
    result, _ = run_source("images.yaml", tmp_path / "run", annotations, tmp_path / "src" / "images", tagger=tagger)
    assert result.exit_code == 0, result.output
    videos = {v["video_id"]: v for v in export_rows(tmp_path / "run", "videos")}
    assert sorted(videos) == ["scene_00", "scene_20"] and all(v["frame_indices"] == [0] for v in videos.values())
    for obj in export_rows(tmp_path / "run", "objects"):
        assert obj["frame_indices"] == [0]
        got = masks.decode(obj["mask_rles"][0], H, W)
        assert np.array_equal(got, expected[(obj["video_id"], obj["object_id"])])
    assert runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "grandf", "--out",
                               str(tmp_path / "gf")]).exit_code == 0
    entries = json.loads((tmp_path / "gf" / "grandf.json").read_text())
    assert len(entries) == 2
    for entry in entries:
        for phrase, g in entry["groundings"].items():
            start, end = g["token_positives"]
            assert entry["caption"][start:end] == phrase
            rle = g["rle_masks"][0]
            got = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
            assert np.array_equal(got, expected[(Path(entry["file_name"]).parent.name, g["object_id"])])
