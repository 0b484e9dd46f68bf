"""YouTube-VIS and per-frame COCO exports, judged by pycocotools, the YouTube-VIS API and TrackEval."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotator import masks
from annotator.export.coco import coco_dict, write_coco
from annotator.export.ytvis import write_ytvis, ytvis_dict
from annotator.sources.ytvis import read_ytvis
from tests.export.ytvis_eval import YTVIS, YTVISeval
from tests.export.ytvis_fixture import make_ytvis_gt
from tests.synthetic import H, W


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ytvis")
    path, frames_root, expected = make_ytvis_gt(root)
    return read_ytvis(path, frames_root), expected, json.loads(path.read_text())


def decode_seg(seg: dict, h: int, w: int) -> np.ndarray:
    return masks.decode(masks.from_coco(seg, h, w), h, w)


@pytest.mark.parametrize("rle", ["compressed", "uncompressed"])
def test_round_trip_keeps_every_mask(source, rle: str) -> None:
    items, expected, original = source
    out = ytvis_dict(items, rle=rle)
    assert [v["name"] for v in out["videos"]] == ["scene_a", "scene_b"]
    assert [len(v["file_names"]) for v in out["videos"]] == [24, 16]
    assert len(out["annotations"]) == len(original["annotations"])
    for ann in out["annotations"]:
        assert "instance_id" not in ann
        want = expected[ann["video_id"], ann["track_id"]]
        assert len(ann["segmentations"]) == len(want)
        for seg, area, box, m in zip(ann["segmentations"], ann["areas"], ann["bboxes"], want, strict=True):
            if m is None:
                assert seg is None and area is None and box is None
                continue
            assert isinstance(seg["counts"], list if rle == "uncompressed" else str)
            assert np.array_equal(decode_seg(seg, H, W), m) and area == int(m.sum())
    names = {c["id"]: c["name"] for c in out["categories"]}
    assert sorted(names.values()) == ["astronaut face", "cat", "cup", "flag", "rocket", "sign"]


def test_ytvis_eval_scores_itself_ap_1(source, tmp_path: Path) -> None:
    items, _, _ = source
    gt_path = write_ytvis(items, tmp_path, rle="uncompressed")
    predictions = ytvis_dict(items)["annotations"]
    results = [{"video_id": a["video_id"], "category_id": a["category_id"], "segmentations": a["segmentations"],
                "score": 1.0} for a in predictions]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = YTVIS(str(gt_path))
        evaluation = YTVISeval(gt, gt.loadRes(results), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP@[.5:.95]
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP@.5


def test_trackeval_reads_gt_and_predictions(source, tmp_path: Path) -> None:
    trackeval = pytest.importorskip("trackeval")
    items, _, _ = source
    gt_dir = tmp_path / "gt" / "youtube_vis_val"
    write_ytvis(items, gt_dir, rle="uncompressed")
    tracker_dir = tmp_path / "trackers" / "youtube_vis_val" / "annotator" / "data"
    tracker_dir.mkdir(parents=True)
    results = [{"video_id": a["video_id"], "category_id": a["category_id"], "segmentations": a["segmentations"],
                "score": 1.0} for a in ytvis_dict(items)["annotations"]]
    (tracker_dir / "results.json").write_text(json.dumps(results))
    config = trackeval.datasets.YouTubeVIS.get_default_dataset_config()
    config.update(GT_FOLDER=f"{tmp_path}/gt/", TRACKERS_FOLDER=f"{tmp_path}/trackers/", SPLIT_TO_EVAL="val",
                  PRINT_CONFIG=False, OUTPUT_FOLDER=str(tmp_path / "out"))
    eval_config = trackeval.Evaluator.get_default_eval_config()
    eval_config.update(USE_PARALLEL=False, PRINT_RESULTS=False, PRINT_CONFIG=False, OUTPUT_SUMMARY=False,
                       OUTPUT_DETAILED=False, PLOT_CURVES=False, TIME_PROGRESS=False)
    with contextlib.redirect_stdout(io.StringIO()):
        results, messages = trackeval.Evaluator(eval_config).evaluate(
            [trackeval.datasets.YouTubeVIS(config)], [trackeval.metrics.HOTA()]
        )
    assert messages == {"YouTubeVIS": {"annotator": "Success"}}
    combined = results["YouTubeVIS"]["annotator"]["COMBINED_SEQ"]
    assert float(combined["cls_comb_det_av"]["HOTA"]["HOTA"].mean()) == pytest.approx(1.0)


def test_per_frame_coco_loads_and_scores_ap_1(source, tmp_path: Path) -> None:
    items, expected, _ = source
    path = write_coco(items, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert len(coco.getImgIds()) == 24 + 16
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert "instance_id" not in ann and ann["track_id"] > 0
        assert ann["area"] == int(coco.annToMask(ann).sum())
    first = coco.loadImgs(coco.getImgIds())[0]
    assert (first["video_id"], first["frame_index"], first["file_name"]) == (1, 0, "scene_a/00000.jpg")
    data = coco_dict(items)
    detections = [{**a, "score": 1.0} for a in data["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco, coco.loadRes(detections), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    cat_mask = {a["image_id"]: coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(catIds=[coco.getCatIds(
        catNms=["cat"])[0]]))}
    image_of = {(img["video_id"], img["frame_index"]): img["id"] for img in coco.loadImgs(coco.getImgIds())}
    for t, m in enumerate(expected[1, 11]):  # the fixture's files are 00000, 00005, ...: frame numbers are theirs
        assert np.array_equal(cat_mask[image_of[1, 5 * t]].astype(bool), m)
    assert {img["file_name"] for img in coco.loadImgs(coco.getImgIds())} >= {"scene_a/00005.jpg", "scene_a/00115.jpg"}
