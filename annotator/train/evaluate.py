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

Predictions are our JSON lines (`annotator.train.predict`) or files in the shape GLaMM's and VideoGLaMM's GCG
inference writes: a JSON list (or one object per line, or a folder of `.json` files) of `{"video_id" or
"image_id", "qa_id" (optional: the video's first triplet), "caption" (with <p> … </p>), "phrases": [...],
"pred_masks": [...]}`, one entry of `pred_masks` per phrase: a COCO RLE dict (an image or a one-frame video) or
a list of them, one per frame of `frame_indices` (optional: the video's sampled frames).
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


def _entries(path: Path) -> list[dict[str, Any]]:
    if path.is_dir():
        return [e for f in sorted(path.glob("*.json")) for e in _entries(f)]
    text = path.read_text().strip()
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _counts(rle: Any) -> str:
    counts = rle["counts"] if isinstance(rle, dict) else rle
    return counts.decode() if isinstance(counts, bytes) else counts


def from_glamm(entry: dict[str, Any], records: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """A GLaMM/VideoGLaMM-style GCG prediction in our shape (see the module docstring)."""
    vid = str(entry.get("video_id", entry.get("image_id", "")))
    qa_id = entry.get("qa_id") or next((q for v, q in sorted(records) if v == vid), "")
    frames = entry.get("frame_indices") or (records[(vid, qa_id)].video["frame_indices"] if (vid, qa_id) in records
                                           else [0])
    objects = []
    for n, masks_of in enumerate(entry.get("pred_masks", [])):
        per_frame = masks_of if isinstance(masks_of, list) else [masks_of]
        if len(per_frame) != len(frames):
            raise ValueError(f"{vid}: phrase {n} has {len(per_frame)} masks for {len(frames)} frames")
        objects.append({"phrase": (entry.get("phrases") or [""] * (n + 1))[n], "frame_indices": list(frames),
                        "mask_rles": [_counts(r) for r in per_frame], "score": 1.0})
    return {"video_id": vid, "qa_id": qa_id, "answer": entry.get("caption", ""), "objects": objects}


def evaluate(predictions: str | Path, run_dir: str) -> dict[str, float | str]:
    truth = {(r.qa["video_id"], r.qa["qa_id"]): r for r in load_records(run_dir)}
    preds = [p if "objects" in p else from_glamm(p, truth) for p in _entries(Path(predictions))]
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
    result: dict[str, float | str] = {
        "samples": len(preds), "objects": total, "mIoU": round(float(np.mean(ious)) if ious else 0.0, 4),
        "recall": round(recalled / total, 4) if total else 0.0, "AP50": round(ap50(scored, total), 4),
    }
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        result["CIDEr"] = result["METEOR"] = "skipped: pip install 'annotator[eval]' (pycocoevalcap)"
        return result
    result["CIDEr"] = round(float(Cider().compute_score(refs, hyps)[0]), 4)
    if shutil.which("java"):
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()  # a Java subprocess, stopped when the scorer is collected
        result["METEOR"] = round(float(meteor.compute_score(refs, hyps)[0]), 4)
        del meteor
    else:
        result["METEOR"] = "skipped: needs Java (apt-get install default-jre-headless)"
    return result
