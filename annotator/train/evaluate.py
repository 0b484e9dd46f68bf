"""GCG metrics of predictions against a run's dataset, under one of three protocols (`--protocol`).

The evaluation set is the triplets that have a prediction. Masks are compared on the video's sampled frames.

**annotator** (default; stricter than the published ones because it penalises missed objects). Per triplet,
each predicted object's track is compared with each ground-truth object's on the predicted frames (IoU = summed
intersection / summed union; two tracks empty on every frame agree, IoU 1). Pairs are matched one to one, best
IoU first while above 0 (equal IoUs go to the pair whose phrases match). Over all triplets:
- mIoU: the mean over *ground-truth objects* of the IoU of the prediction matched to it, 0 when none is;
- recall: the share of ground-truth objects matched with IoU >= 0.5 and a phrase match (word-overlap F1 of the
  phrases, articles ignored, >= 0.5);
- AP50: class-agnostic AP at IoU 0.5, predictions ranked by their `score`, 101-point interpolation;
- CIDEr (pycocoevalcap) of the answers without markup, untokenized; METEOR when Java is installed.

**videoglamm** reproduces VideoGLaMM's `eval_gcg_metrics.py`. Each triplet is one "video":
- IoU is over the whole (T, H, W) stack of the predicted frames (0 / 0 = NaN when both stacks are empty,
  with numpy's consequences, as there);
- the video's mIoU is the mean over greedily paired masks (largest IoU first, ties to the first prediction, then
  the first ground truth, while the largest left is above 0), unmatched masks not counted, 0 when none pair;
  mIoU is the mean over videos;
- recall: ground-truth objects walked greedily by IoU (ties to the first ground truth); the walk **stops at the
  first** best pair whose IoU < 0.5 or whose text similarity < 0.5. Text similarity is the cosine of the mean
  last hidden state (all tokens, special ones included, at most 512) of `--text-model` (default
  `bert-base-uncased`). Recall = matched pairs / ground-truth objects over all videos;
- a video that cannot be scored (masks that do not fit its frames, an unreadable entry) counts mIoU 0, no
  match, and an empty caption; it is listed under `failures`;
- CIDEr and METEOR through COCOEvalCap's PTB tokenizer, both texts cut to 2,000 characters. No AP.

**glamm** reproduces GLaMM's `eval/gcg/evaluate.py`, which is image-level: each sampled frame of a triplet
where the ground truth or the prediction has a non-empty mask is one image (a one-frame item is exactly
GLaMM's case). On each image, the visible masks are paired as above (2-D IoU), giving the image's mIoU (mean
over images) and recall (same early-stopping walk and text similarity). AP50 is pycocotools'
`COCOeval(..., "segm")` with one category and every prediction scored 1.0: `stats[1]`, AP at IoU 0.5, all areas,
100 detections. CIDEr and METEOR through the PTB tokenizer, one caption per triplet, untruncated.

Predictions are our JSON lines (`annotator.train.predict`) or files in the shape GLaMM's and VideoGLaMM's GCG
inference writes: a JSON list (or one object per line, or a folder of `.json` files) of `{"video_id" or
"image_id", "qa_id" (optional: the video's first triplet), "caption" (with <p> … </p>), "phrases": [...],
"pred_masks": [...]}`, one entry of `pred_masks` per phrase: a COCO RLE dict (an image or a one-frame video) or
a list of them, one per frame of `frame_indices` (optional: the video's sampled frames).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from annotator.train.data import Record, load_records
from annotator.train.protocols import PROTOCOLS, Sample, ap50, greedy, phrase_match, track_iou
from annotator.train.textsim import TextSimilarity

__all__ = ["PROTOCOLS", "ap50", "evaluate", "from_glamm", "greedy", "phrase_match", "track_iou"]


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


def _key(entry: dict[str, Any], records: dict[tuple[str, str], Record]) -> tuple[str, str]:
    vid = str(entry.get("video_id", entry.get("image_id", "")))
    return vid, entry.get("qa_id") or next((q for v, q in sorted(records) if v == vid), "")


def from_glamm(entry: dict[str, Any], records: dict[tuple[str, str], Record]) -> dict[str, Any]:
    """A GLaMM/VideoGLaMM-style GCG prediction in our shape (see the module docstring)."""
    vid, qa_id = _key(entry, records)
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


def samples(predictions: str | Path, run_dir: str) -> list[Sample]:
    """Each prediction with its ground-truth triplet; an entry that cannot be read becomes a Sample with its
    error (the protocol decides whether that stops the evaluation or scores 0)."""
    truth = {(r.qa["video_id"], r.qa["qa_id"]): r for r in load_records(run_dir)}
    out = []
    for entry in _entries(Path(predictions)):
        key = (str(entry["video_id"]), str(entry["qa_id"])) if "objects" in entry else _key(entry, truth)
        if key not in truth:
            raise ValueError(f"{predictions}: {key[0]}/{key[1]} is not a triplet of {run_dir}")
        try:
            out.append(Sample(truth[key], entry if "objects" in entry else from_glamm(entry, truth)))
        except (ValueError, KeyError, TypeError) as exc:
            out.append(Sample(truth[key], None, f"unreadable prediction: {exc}"))
    if not out:
        raise ValueError(f"{predictions}: no predictions")
    return out


def evaluate(predictions: str | Path, run_dir: str, protocol: str = "annotator",
             text_model: str = "bert-base-uncased") -> dict[str, Any]:
    """The protocol's figures, with `protocol` named in them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol {protocol}: one of {', '.join(PROTOCOLS)}")
    chosen = PROTOCOLS[protocol]()
    found = samples(predictions, run_dir)
    text = TextSimilarity(text_model) if chosen.text_model else None
    return {"protocol": protocol, **chosen.score(found, text)}
