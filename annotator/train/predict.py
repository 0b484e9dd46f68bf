"""Predictions of a trained model for a run's QA triplets: the generated answer and a mask track per `[SEG]`.

Written as JSON lines, one per triplet: `{"video_id", "qa_id", "question", "answer" (with <p> … </p> [SEG]),
"objects": [{"phrase", "frame_indices" (source frames), "mask_rles" (COCO RLE, one per frame), "score"}]}`,
objects in `[SEG]` order. The frames are the ones the dataset samples for that triplet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from annotator import masks
from annotator.train.data import GROUNDED, GcgDataset, cap_phrases, conversation
from annotator.train.model import GroundingModel
from annotator.train.stream import StreamingRecords


@torch.no_grad()
def predict_one(model: GroundingModel, dataset: GcgDataset, index: int, max_new_tokens: int,
                answers: str = "generate") -> dict[str, Any]:
    """`answers`: `generate` (the model writes the answer, GCG proper) or `dataset` (the dataset's answer is
    given, teacher-forced: scores the grounding alone, as referring segmentation does)."""
    record = dataset.records[index]
    positions = dataset.positions(index)
    clip = dataset.frames(record, positions)
    asked = conversation(model.processor, clip, record.qa["question"], None)
    length = len(asked["input_ids"])
    inputs = {k: (v[None] if v.ndim == 1 and len(v) == length else v) for k, v in asked.items()}
    tokenizer = model.processor.tokenizer
    if answers == "dataset":
        answer = cap_phrases(record.qa["answer"], dataset.max_phrases)
        given = conversation(model.processor, clip, record.qa["question"], answer)
        generated = given["input_ids"][None]
    else:
        generated = model.vlm.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id)
        new = generated[0, inputs["input_ids"].shape[1]:]
        stop = {tokenizer.eos_token_id, tokenizer.pad_token_id}
        answer = tokenizer.decode([int(t) for t in new if int(t) not in stop], skip_special_tokens=False).strip()
    grown = generated.shape[1] - length  # per-token rows of the generated part: attention 1, token type 0 (text)
    full = {k: (torch.nn.functional.pad(v, (0, grown), value=1 if k == "attention_mask" else 0)
                if v.ndim == 2 and v.shape == (1, length) else v) for k, v in inputs.items()}
    full["input_ids"] = generated
    hidden = model.vlm(**full, output_hidden_states=True).hidden_states[-1]
    (states,) = model.seg_states(hidden, generated)
    v = record.video
    objects = []
    if len(states):
        sam = model.sam_processor(images=list(clip), return_tensors="pt")["pixel_values"]
        logits = model.masks(sam, states)  # (N, T, h, w)
        full_size = F.interpolate(logits, size=(v["height"], v["width"]), mode="bilinear", align_corners=False)
        phrases = [m.group(1) for m in GROUNDED.finditer(answer)]
        for n in range(len(states)):
            binary = (full_size[n] > 0).numpy()
            objects.append({
                "phrase": phrases[n] if n < len(phrases) else "",
                "frame_indices": [v["frame_indices"][p] for p in positions],
                "mask_rles": masks.encode_batch(binary),
                "score": round(float(logits[n].sigmoid().mean()), 6),
            })
    return {"video_id": record.qa["video_id"], "qa_id": record.qa["qa_id"], "question": record.qa["question"],
            "answer": answer, "objects": objects}


def predict(model: GroundingModel, run_dir: str, out: str | Path, num_frames: int = 4, max_phrases: int = 4,
            seed: int = 0, limit: int | None = None, max_new_tokens: int = 64, answers: str = "generate") -> Path:
    model.eval()
    records = StreamingRecords(run_dir)  # the trainer's order, so a triplet draws the frames it trained on
    if limit:
        records.limit(limit)
    dataset = GcgDataset(run_dir, model.processor, model.sam_processor, num_frames, max_phrases, seed, records)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for i in range(len(dataset)):
            fh.write(json.dumps(predict_one(model, dataset, i, max_new_tokens, answers)) + "\n")
    return out
