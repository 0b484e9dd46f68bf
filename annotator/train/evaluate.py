"""GCG metrics of predictions against a run's dataset.

Per triplet, each predicted object's mask track is compared with each ground-truth object's on the predicted
frames (IoU = summed intersection / summed union over those frames); pairs are matched one to one greedily, best
IoU first (as VideoGLaMM does; equal IoUs go to the pair whose phrases match). Two tracks empty on every frame
agree (IoU 1). Over all triplets:
- **mIoU**: the mean, over ground-truth objects, of the IoU of the prediction matched to it (0 when none is);
- **recall**: the share of ground-truth objects matched with IoU >= 0.5 and a phrase match (word-overlap F1 of
  the normalised phrases >= 0.5);
- **AP50**: class-agnostic average precision at IoU 0.5 (GLaMM), predictions ranked by their score, 101-point
  interpolation;
- **CIDEr** (pycocoevalcap) of the answers without markup, and **METEOR** when Java is installed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from annotator import masks
from annotator.train.data import load_records, plain


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ("a", "an", "the")]


def phrase_match(a: str, b: str) -> bool:
    x, y = _words(a), _words(b)
    common = sum(min(x.count(w), y.count(w)) for w in set(x))
    return bool(x and y) and 2 * common / (len(x) + len(y)) >= 0.5


def track_iou(pred: dict[str, Any], gt: dict[str, Any], h: int, w: int) -> float:
    truth = dict(zip(gt["frame_indices"], gt["mask_rles"], strict=True))
    inter = union = 0
    for frame, rle in zip(pred["frame_indices"], pred["mask_rles"], strict=True):
        p = masks.decode(rle, h, w)
        g = masks.decode(truth[frame], h, w) if frame in truth else np.zeros((h, w), bool)
        inter += int((p & g).sum())
        union += int((p | g).sum())
    return inter / union if union else 1.0  # both empty on every frame: they agree


def greedy(iou: np.ndarray) -> list[tuple[int, int]]:
    pairs, rows, cols = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        r, c = np.unravel_index(flat, iou.shape)
        if r not in rows and c not in cols and iou[r, c] > 0:
            pairs.append((int(r), int(c)))
            rows.add(int(r))
            cols.add(int(c))
    return pairs


def ap50(scored: list[tuple[float, bool]], positives: int) -> float:
    if not positives:
        return 0.0
    ranked = sorted(scored, key=lambda s: -s[0])
    tp = np.cumsum([hit for _, hit in ranked])
    fp = np.cumsum([not hit for _, hit in ranked])
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, 1)
    points = np.linspace(0, 1, 101)
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in points]))


def evaluate(predictions: str | Path, run_dir: str) -> dict[str, float | str]:
    truth = {(r.qa["video_id"], r.qa["qa_id"]): r for r in load_records(run_dir)}
    preds = [json.loads(line) for line in Path(predictions).read_text().splitlines() if line.strip()]
    if not preds:
        raise ValueError(f"{predictions}: no predictions")
    ious: list[float] = []
    recalled = total = 0
    scored: list[tuple[float, bool]] = []
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    for n, pred in enumerate(preds):
        key = (pred["video_id"], pred["qa_id"])
        if key not in truth:
            raise ValueError(f"{predictions}: {key[0]}/{key[1]} is not a triplet of {run_dir}")
        record = truth[key]
        h, w = record.video["height"], record.video["width"]
        gts, ps = record.objects, pred["objects"]
        iou = np.array([[track_iou(p, g, h, w) for g in gts] for p in ps]).reshape(len(ps), len(gts))
        same = np.array([[phrase_match(p["phrase"], g["phrase"]) for g in gts] for p in ps]).reshape(iou.shape)
        matched = dict((c, r) for r, c in greedy(iou + 1e-6 * same)) if iou.size else {}  # ties: same phrase first
        for c, g in enumerate(gts):
            r = matched.get(c)
            ious.append(float(iou[r, c]) if r is not None else 0.0)
            recalled += bool(r is not None and iou[r, c] >= 0.5 and phrase_match(ps[r]["phrase"], g["phrase"]))
        total += len(gts)
        for r, p in enumerate(ps):
            hit = any(rr == r and iou[r, cc] >= 0.5 for cc, rr in matched.items())
            scored.append((float(p.get("score", 1.0)), hit))
        refs[str(n)] = [plain(record.qa["answer"]) or "."]
        hyps[str(n)] = [plain(pred["answer"]) or "."]
    from pycocoevalcap.cider.cider import Cider

    result: dict[str, float | str] = {
        "samples": len(preds), "objects": total, "mIoU": round(float(np.mean(ious)) if ious else 0.0, 4),
        "recall": round(recalled / total, 4) if total else 0.0, "AP50": round(ap50(scored, total), 4),
        "CIDEr": round(float(Cider().compute_score(refs, hyps)[0]), 4),
    }
    if shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()  # a Java subprocess, stopped when the scorer is collected
        result["METEOR"] = round(float(meteor.compute_score(refs, hyps)[0]), 4)
        del meteor
    else:
        result["METEOR"] = "skipped: needs Java (apt-get install default-jre-headless)"
    return result
