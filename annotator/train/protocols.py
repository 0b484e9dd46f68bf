"""The three GCG evaluation protocols; `annotator.train.evaluate`'s docstring says what each computes.

A protocol scores a list of `Sample`s (one QA triplet of the dataset with its prediction) and returns its
figures. It is one registered class: `PROTOCOLS[name]`.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from annotator import masks
from annotator.train.captions import caption_scores
from annotator.train.data import Record, plain
from annotator.train.matching import iou_matrix, matched_mean, recall_matches, stack
from annotator.train.textsim import TextSimilarity


@dataclass
class Sample:
    truth: Record
    pred: dict[str, Any] | None  # our prediction shape; None when the entry could not be read
    error: str = ""  # why the entry could not be read or scored

    @property
    def key(self) -> str:
        return f"{self.truth.qa['video_id']}/{self.truth.qa['qa_id']}"


class Protocol:
    name: ClassVar[str]
    text_model: ClassVar[bool] = False  # needs `--text-model` for phrase similarity

    def score(self, samples: list[Sample], text: TextSimilarity | None) -> dict[str, Any]:
        raise NotImplementedError


PROTOCOLS: dict[str, type[Protocol]] = {}


def register(cls: type[Protocol]) -> type[Protocol]:
    PROTOCOLS[cls.name] = cls
    return cls


def _checked(sample: Sample) -> dict[str, Any]:
    """The prediction of a protocol that stops at an unreadable entry (ours and GLaMM's)."""
    if sample.pred is None:
        raise ValueError(f"{sample.key}: {sample.error}")
    return sample.pred


def _sampled(sample: Sample, frames: list[int]) -> None:
    known = set(sample.truth.video["frame_indices"])
    if unknown := sorted(set(frames) - known):
        raise ValueError(f"{sample.key}: predicted frames {unknown[:5]} are not sampled frames of the video")


# ---- annotator: today's stricter protocol -----------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ("a", "an", "the")]


def phrase_match(a: str, b: str) -> bool:
    """Word-overlap F1 of the normalised phrases (articles ignored) >= 0.5."""
    x, y = _words(a), _words(b)
    common = sum(min(x.count(w), y.count(w)) for w in set(x))
    return bool(x and y) and 2 * common / (len(x) + len(y)) >= 0.5


def track_iou(pred: dict[str, Any], gt: dict[str, Any], h: int, w: int) -> float:
    """IoU summed over the predicted frames; two tracks empty on every one of them agree (1.0)."""
    frames = list(pred["frame_indices"])
    p, g = stack(pred, frames, h, w), stack(gt, frames, h, w)
    union = int((p | g).sum())
    return int((p & g).sum()) / union if union else 1.0


def greedy(iou: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one pairs, best IoU first, while above 0 (ties: the first in row-major order)."""
    pairs, rows, cols = [], set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        r, c = np.unravel_index(flat, iou.shape)
        if r not in rows and c not in cols and iou[r, c] > 0:
            pairs.append((int(r), int(c)))
            rows.add(int(r))
            cols.add(int(c))
    return pairs


def ap50(scored: list[tuple[float, bool]], positives: int) -> float:
    """Class-agnostic AP at IoU 0.5: predictions ranked by score, precision interpolated at 101 recall points."""
    if not positives:
        return 0.0
    ranked = sorted(scored, key=lambda s: -s[0])
    tp = np.cumsum([hit for _, hit in ranked])
    fp = np.cumsum([not hit for _, hit in ranked])
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, 1)
    points = np.linspace(0, 1, 101)
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in points]))


@register
class AnnotatorProtocol(Protocol):
    name = "annotator"

    def score(self, samples: list[Sample], text: TextSimilarity | None) -> dict[str, Any]:
        ious: list[float] = []
        recalled = total = 0
        scored: list[tuple[float, bool]] = []
        for sample in samples:
            pred, record = _checked(sample), sample.truth
            h, w = record.video["height"], record.video["width"]
            gts, ps = record.objects, pred["objects"]
            iou = np.array([[track_iou(p, g, h, w) for g in gts] for p in ps]).reshape(len(ps), len(gts))
            same = np.array([[phrase_match(p["phrase"], g["phrase"]) for g in gts] for p in ps]).reshape(iou.shape)
            matched = {c: r for r, c in greedy(iou + 1e-6 * same)} if iou.size else {}  # ties: same phrase first
            for c, g in enumerate(gts):
                r = matched.get(c)
                ious.append(float(iou[r, c]) if r is not None else 0.0)
                recalled += bool(r is not None and iou[r, c] >= 0.5 and phrase_match(ps[r]["phrase"], g["phrase"]))
            total += len(gts)
            hits = {r for c, r in matched.items() if iou[r, c] >= 0.5}
            scored += [(float(p.get("score", 1.0)), r in hits) for r, p in enumerate(ps)]
        return {"samples": len(samples), "objects": total,
                "mIoU": round(float(np.mean(ious)) if ious else 0.0, 4),
                "recall": round(recalled / total, 4) if total else 0.0, "AP50": round(ap50(scored, total), 4),
                **caption_scores([plain(s.truth.qa["answer"]) for s in samples],
                                 [plain(_checked(s)["answer"]) for s in samples], tokenize=False)}


# ---- videoglamm: VideoGLaMM's eval_gcg_metrics.py ---------------------------------------------------------------

@register
class VideoGlammProtocol(Protocol):
    name = "videoglamm"
    text_model = True
    max_chars = 2000

    def score(self, samples: list[Sample], text: TextSimilarity | None) -> dict[str, Any]:
        assert text is not None
        mious: list[float] = []
        matched = total = 0
        refs, hyps, failed = [], [], []
        for sample in samples:
            gts = sample.truth.objects
            total += len(gts)
            refs.append(plain(sample.truth.qa["answer"])[: self.max_chars])
            try:
                miou, hits = self.one(sample, text)
            except ValueError as exc:  # the reference catches any exception of a video and scores it 0
                failed.append(str(exc) if sample.key in str(exc) else f"{sample.key}: {exc}")
                mious.append(0.0)
                hyps.append("")
                continue
            mious.append(miou)
            matched += hits
            hyps.append(plain(_checked(sample)["answer"])[: self.max_chars])
        return {"samples": len(samples), "objects": total, "failed": len(failed), "failures": failed[:20],
                "mIoU": round(float(np.mean(mious)) if mious else 0.0, 6),
                "recall": round(matched / total, 6) if total else 0.0,
                **caption_scores(refs, hyps, tokenize=True)}

    def one(self, sample: Sample, text: TextSimilarity) -> tuple[float, int]:
        """(mIoU of the video, recalled objects): IoU over the (T, H, W) stack of the predicted frames."""
        pred, record = _checked(sample), sample.truth
        h, w = record.video["height"], record.video["width"]
        frames = sorted({f for p in pred["objects"] for f in p["frame_indices"]}) \
            or list(record.video["frame_indices"])
        _sampled(sample, frames)
        ps = [stack(p, frames, h, w) for p in pred["objects"]]
        gs = [stack(g, frames, h, w) for g in record.objects]
        iou = iou_matrix(ps, gs)  # pred rows, gt columns
        sims = text.matrix([g["phrase"] for g in record.objects], [p["phrase"] for p in pred["objects"]])
        return matched_mean(iou), len(recall_matches(iou.T, sims))


# ---- glamm: GLaMM's eval/gcg/evaluate.py ------------------------------------------------------------------------

@dataclass
class Image:
    """One sampled frame of a triplet where the truth or the prediction has a mask: GLaMM's unit."""

    gt: list[tuple[str, str]]  # (phrase, RLE counts) of the objects visible on the frame
    pred: list[tuple[str, str]]
    height: int
    width: int


@register
class GlammProtocol(Protocol):
    name = "glamm"
    text_model = True

    def score(self, samples: list[Sample], text: TextSimilarity | None) -> dict[str, Any]:
        assert text is not None
        images = [image for sample in samples for image in self.images(sample)]
        mious, matched, total = [], 0, 0
        for im in images:
            gs = [masks.decode(c, im.height, im.width) for _, c in im.gt]
            ps = [masks.decode(c, im.height, im.width) for _, c in im.pred]
            iou = iou_matrix(ps, gs)
            mious.append(matched_mean(iou))
            sims = text.matrix([p for p, _ in im.gt], [p for p, _ in im.pred])
            matched += len(recall_matches(iou.T, sims))
            total += len(im.gt)
        return {"samples": len(samples), "images": len(images), "objects": total,
                "mIoU": round(float(np.mean(mious)) if mious else 0.0, 6),
                "recall": round(matched / total, 6) if total else 0.0, "AP50": round(coco_ap50(images), 6),
                **caption_scores([plain(s.truth.qa["answer"]) for s in samples],
                                 [plain(_checked(s)["answer"]) for s in samples], tokenize=True)}

    @staticmethod
    def images(sample: Sample) -> list[Image]:
        pred, record = _checked(sample), sample.truth
        h, w = record.video["height"], record.video["width"]
        for p in pred["objects"]:
            _sampled(sample, p["frame_indices"])
            if len(p["frame_indices"]) != len(p["mask_rles"]):
                raise ValueError(f"{sample.key}: an object has {len(p['mask_rles'])} masks for "
                                 f"{len(p['frame_indices'])} frames")

        def visible(objects: list[dict[str, Any]], frame: int) -> list[tuple[str, str]]:
            return [(o["phrase"], rle) for o in objects for f, rle in zip(o["frame_indices"], o["mask_rles"],
                                                                          strict=True)
                    if f == frame and masks.area(rle, h, w)]

        out = []
        for frame in record.video["frame_indices"]:
            gt, pr = visible(record.objects, frame), visible(pred["objects"], frame)
            if gt or pr:
                out.append(Image(gt, pr, h, w))
        return out


def coco_ap50(images: list[Image]) -> float:
    """AP at IoU 0.5 from pycocotools' COCOeval (segm, one category, every prediction scored 1.0), as GLaMM
    reports it (`stats[1]`); 0.0 without a prediction or a ground-truth mask."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    dt: list[dict[str, Any]] = []
    for n, im in enumerate(images, start=1):
        gt["images"].append({"id": n, "height": im.height, "width": im.width})
        for _, counts in im.gt:
            rle = {"size": [im.height, im.width], "counts": counts}
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": n, "category_id": 1,
                                      "segmentation": rle, "area": float(mask_utils.area(rle)),
                                      "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
        dt += [{"image_id": n, "category_id": 1, "segmentation": {"size": [im.height, im.width], "counts": c},
                "score": 1.0} for _, c in im.pred]
    if not dt or not gt["annotations"]:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(dt), "segm")
        evaluation.params.catIds = [1]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return max(float(evaluation.stats[1]), 0.0)
