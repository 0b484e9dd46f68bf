"""The published GCG protocols against a plain restatement of the reference algorithms, written here.

VideoGLaMM (`eval_gcg_metrics.py`): per-video mIoU over greedy pairs on the (T, H, W) stack, mean over videos;
recall walks pairs by IoU and stops at the first best pair under 0.5 IoU or 0.5 BERT similarity; a video that
raises counts 0. GLaMM (`eval/gcg/evaluate.py`): the same per image, plus AP50 from pycocotools' COCOeval. The
hand-made cases cover a missed object, an extra object, a text mismatch that ends the walk early, IoU ties,
objects absent on some frames, and failed videos.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from transformers import AutoModel, AutoTokenizer

from annotator.train.data import Record
from annotator.train.evaluate import PROTOCOLS
from annotator.train.protocols import Sample
from annotator.train.textsim import TextModelError, TextSimilarity

H = W = 16
FRAMES = [0, 5, 10]


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def rle(m: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()


def obj(phrase: str, per_frame: dict[int, np.ndarray]) -> dict:
    return {"phrase": phrase, "frame_indices": list(per_frame), "mask_rles": [rle(m) for m in per_frame.values()],
            "score": 1.0}


def on(frames: list[int], m: np.ndarray) -> dict[int, np.ndarray]:
    return dict.fromkeys(frames, m)


def sample(vid: str, gts: list[dict], preds: list[dict] | None, answer: str = "a man holds a cup",
           predicted: str = "a man holds a cup", frames: list[int] = FRAMES, error: str = "") -> Sample:
    truth = Record({"video_id": vid, "height": H, "width": W, "frame_indices": frames},
                   {"video_id": vid, "qa_id": "q0", "answer": answer}, gts)
    pred = None if preds is None else {"video_id": vid, "qa_id": "q0", "answer": predicted, "objects": preds}
    return Sample(truth, pred, error)


# ---- the reference algorithms, restated plainly -------------------------------------------------------------------

class Bert:
    def __init__(self, folder: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder)

    def sim(self, a: str, b: str) -> float:
        def embed(text: str) -> np.ndarray:
            inputs = self.tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
            with torch.no_grad():
                return torch.mean(self.model(**inputs).last_hidden_state[0], dim=0).numpy()

        x, y = embed(a), embed(b)
        return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def ref_iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.sum(np.logical_and(a, b)) / np.sum(np.logical_or(a, b))


def ref_miou(preds: list[np.ndarray], gts: list[np.ndarray]) -> float:
    m = np.zeros((len(preds), len(gts)))
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            m[i, j] = ref_iou(p, g)
    paired = []
    while m.size > 0 and np.max(m) > 0:
        i, j = np.unravel_index(np.argmax(m), m.shape)
        paired.append(m[i, j])
        m = np.delete(np.delete(m, i, axis=0), j, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def ref_matches(gts: list[np.ndarray], gt_labels: list[str], preds: list[np.ndarray], pred_labels: list[str],
                bert: Bert) -> int:
    ious = np.zeros((len(gts), len(preds)))
    sims = np.zeros((len(gts), len(preds)))
    for i, g in enumerate(gts):
        for j, p in enumerate(preds):
            ious[i, j] = ref_iou(g, p)
            sims[i, j] = bert.sim(gt_labels[i], pred_labels[j])
    found = 0
    while ious.size > 0:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[i, j] < 0.5 or sims[i, j] < 0.5:
            break
        found += 1
        ious[i, :] = 0
        ious[:, j] = 0
        sims[i, :] = 0
        sims[:, j] = 0
    return found


def stacked(o: dict, frames: list[int]) -> np.ndarray:
    by = dict(zip(o["frame_indices"], o["mask_rles"], strict=True))
    return np.stack([mask_utils.decode({"size": [H, W], "counts": by[f]}).astype(bool) if f in by
                     else np.zeros((H, W), bool) for f in frames])


# ---- cases ---------------------------------------------------------------------------------------------------------

MAN, DOG, CUP, TREE = box(0, 0, 6, 6), box(8, 0, 16, 6), box(0, 8, 6, 16), box(9, 9, 15, 15)


def video_cases() -> list[Sample]:
    missed_and_extra = sample("v1", [obj("a man", on(FRAMES, MAN)), obj("the dog", on(FRAMES, DOG)),
                                     obj("a red cup", on(FRAMES, CUP))],
                              [obj("a man", on(FRAMES, box(1, 0, 6, 6))), obj("the dog", on(FRAMES, box(8, 0, 13, 6))),
                               obj("a bird", on(FRAMES, TREE))])
    # the best-IoU pair (man / tree) has unlike phrases: the walk stops before the good cat pair
    stops_early = sample("v2", [obj("a man", on(FRAMES, MAN)), obj("a cat", on(FRAMES, DOG))],
                         [obj("tree", on(FRAMES, MAN)), obj("a cat", on(FRAMES, box(8, 0, 15, 6)))])
    # absent on a frame, and two predictions tied on IoU
    partial = sample("v3", [obj("a small rabbit", {0: TREE, 5: TREE}), obj("grass", {10: CUP})],
                     [obj("a rabbit", {0: TREE, 5: TREE}), obj("a small rabbit", {0: TREE, 5: TREE}),
                      obj("grass", {5: CUP, 10: CUP})])
    garbled = sample("v4", [obj("a man", on(FRAMES, MAN))],
                     [{"phrase": "a man", "frame_indices": FRAMES, "mask_rles": [rle(MAN)]}])  # 1 mask, 3 frames
    unreadable = sample("v5", [obj("a dog", on(FRAMES, DOG)), obj("a cup", on(FRAMES, CUP))], None,
                        error="unreadable prediction: phrase 0 has 2 masks for 3 frames")
    return [missed_and_extra, stops_early, partial, garbled, unreadable]


def test_videoglamm_equals_the_reference_algorithm(tiny_bert: Path) -> None:
    bert = Bert(tiny_bert)
    assert bert.sim("a man", "tree") < 0.5 and bert.sim("a cat", "a cat") > 0.99, "the tiny BERT separates these"
    cases = video_cases()
    got = PROTOCOLS["videoglamm"]().score(cases, TextSimilarity(str(tiny_bert)))
    mious, matched, total = [], 0, 0
    for case in cases:
        total += len(case.truth.objects)
        try:
            assert case.pred is not None
            frames = sorted({f for p in case.pred["objects"] for f in p["frame_indices"]})
            ps = [stacked(p, frames) for p in case.pred["objects"]]
            gs = [stacked(g, frames) for g in case.truth.objects]
            miou = ref_miou(ps, gs)
            hits = ref_matches(gs, [g["phrase"] for g in case.truth.objects], ps,
                               [p["phrase"] for p in case.pred["objects"]], bert)
        except (AssertionError, ValueError):
            miou, hits = 0.0, 0
        mious.append(miou)
        matched += hits
    assert got["mIoU"] == pytest.approx(np.mean(mious), abs=1e-4)
    assert got["recall"] == pytest.approx(matched / total, abs=1e-4)
    assert (got["samples"], got["objects"], got["failed"]) == (5, 10, 2)
    assert mious[0] == pytest.approx((5 / 6 + 5 / 8) / 2) and mious[1] == pytest.approx((1 + 7 / 8) / 2)
    assert matched == 2 + 0 + 2, "v1: man and dog; v2: stopped at man/tree before the cat; v3: rabbit and grass"
    assert "AP50" not in got


def image(vid: str, gts: list[tuple[str, np.ndarray]], preds: list[tuple[str, np.ndarray]]) -> Sample:
    return sample(vid, [obj(p, {0: m}) for p, m in gts], [obj(p, {0: m}) for p, m in preds], frames=[0])


def image_cases() -> list[Sample]:
    return [
        image("i1", [("a man", MAN), ("the dog", DOG), ("a cup", CUP)], [("a man", box(0, 0, 6, 5)),
                                                                         ("a cup", box(0, 8, 6, 12))]),
        image("i2", [("a man", MAN), ("a cat", DOG)], [("tree", MAN), ("a cat", box(8, 0, 15, 6)),
                                                        ("a bird", TREE)]),
        image("i3", [("grass", TREE)], [("grass", box(9, 9, 15, 12)), ("grass", box(9, 9, 15, 13))]),
    ]


def test_glamm_equals_the_reference_and_cocoeval(tiny_bert: Path) -> None:
    bert = Bert(tiny_bert)
    cases = image_cases()
    cases.append(sample("v2f", [obj("a man", {0: MAN, 5: MAN}), obj("a cat", {5: DOG})],
                        [obj("a man", {0: box(0, 0, 6, 3)}), obj("a cat", {5: DOG, 10: TREE})], frames=[0, 5, 10]))
    got = PROTOCOLS["glamm"]().score(cases, TextSimilarity(str(tiny_bert)))
    images: list[tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]] = []
    for case in cases:
        assert case.pred is not None
        for frame in case.truth.video["frame_indices"]:
            def visible(objects: list[dict], frame: int = frame) -> list[tuple[str, np.ndarray]]:
                out = [(o["phrase"], stacked(o, [frame])[0]) for o in objects]
                return [(p, m) for p, m in out if m.any()]
            gt, pr = visible(case.truth.objects), visible(case.pred["objects"])
            if gt or pr:
                images.append((gt, pr))
    assert len(images) == 3 + 3, "one image per frame with a mask on either side"
    mious = [ref_miou([m for _, m in pr], [m for _, m in gt]) for gt, pr in images]
    matched = sum(ref_matches([m for _, m in gt], [p for p, _ in gt], [m for _, m in pr], [p for p, _ in pr], bert)
                  for gt, pr in images)
    assert got["mIoU"] == pytest.approx(np.mean(mious), abs=1e-4)
    assert got["recall"] == pytest.approx(matched / sum(len(gt) for gt, _ in images), abs=1e-4)
    assert got["images"] == 6

    dataset = {"images": [{"id": n, "height": H, "width": W} for n in range(1, len(images) + 1)],
               "categories": [{"id": 1, "name": "thing"}], "annotations": []}
    results = []
    for n, (gt, pr) in enumerate(images, start=1):
        for _, m in gt:
            encoded = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            dataset["annotations"].append({"id": len(dataset["annotations"]) + 1, "image_id": n, "category_id": 1,
                                           "segmentation": {"size": [H, W], "counts": encoded["counts"].decode()},
                                           "area": float(m.sum()), "bbox": list(mask_utils.toBbox(encoded)),
                                           "iscrowd": 0})
        results += [{"image_id": n, "category_id": 1, "score": 1.0,
                     "segmentation": {"size": [H, W], "counts": rle(m)}} for _, m in pr]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "segm")
        evaluation.params.catIds = [1]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert 0 < evaluation.stats[1] < 1
    assert got["AP50"] == pytest.approx(evaluation.stats[1], abs=1e-6)


@pytest.mark.skipif(shutil.which("java") is None, reason="COCOEvalCap's PTB tokenizer needs Java")
def test_reference_captions_go_through_the_ptb_tokenizer(tiny_bert: Path) -> None:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    long = " ".join(f"thing{n}" for n in range(300))  # past 2,000 characters: VideoGLaMM cuts it
    cases = [sample("c1", [], [], answer="A man, in <p> red </p> [SEG] holds a CUP.",
                    predicted="a man in red holds a cup"),
             sample("c2", [], [], answer=long, predicted=long + " and a dog"),
             sample("c3", [], [], answer="grass and a tree", predicted="a dog on grass")]
    text = TextSimilarity(str(tiny_bert))
    video = PROTOCOLS["videoglamm"]().score(cases, text)
    glamm = PROTOCOLS["glamm"]().score(cases, text)
    tokenizer = PTBTokenizer()

    def cider(refs: list[str], hyps: list[str]) -> float:
        gts = tokenizer.tokenize({str(n): [{"caption": r}] for n, r in enumerate(refs)})
        res = tokenizer.tokenize({str(n): [{"caption": h}] for n, h in enumerate(hyps)})
        assert gts["0"] == ["a man in red holds a cup"], "case and punctuation gone, markup removed before"
        return float(Cider().compute_score(gts, res)[0])

    refs = ["A man, in red holds a CUP.", long, "grass and a tree"]
    hyps = ["a man in red holds a cup", long + " and a dog", "a dog on grass"]
    assert video["CIDEr"] == pytest.approx(cider([r[:2000] for r in refs], [h[:2000] for h in hyps]), abs=1e-5)
    assert glamm["CIDEr"] == pytest.approx(cider(refs, hyps), abs=1e-5)
    assert video["CIDEr"] != pytest.approx(glamm["CIDEr"], abs=1e-3), "the truncation matters here"
    assert isinstance(video["METEOR"], float) and 0 < video["METEOR"] <= 1


def test_a_text_model_that_does_not_load_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TextModelError, match=r"^--text-model .*empty: cannot load it"):
        TextSimilarity(str(tmp_path / "empty"))
