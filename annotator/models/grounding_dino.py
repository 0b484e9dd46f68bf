"""Grounding DINO (transformers) as a `Detector`: exact phrase labels, never truncated prompts.

Phrases are packed into `a . b . c .` prompts under the text encoder's token limit (several passes
when needed). Each predicted box is labelled with the single phrase whose tokens score it highest,
so a label is always one member of the phrase list (not the merged text spans the stock post-processing
returns). Per phrase: box and text thresholds, NMS, top-k.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms

from annotator.models import refs
from annotator.models.protocols import BoxHit, PhraseThresholds


class GroundingDinoDetector:
    def __init__(self, model: str, box_threshold: float = 0.35, top_k: int = 3, nms_iou: float = 0.5,
                 text_threshold: float = 0.0, phrase_thresholds: dict[str, PhraseThresholds] | None = None,
                 device: str = "auto", dtype: str = "float32") -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        path = refs.resolve(model)
        self.device = refs.device(device)
        self.processor = AutoProcessor.from_pretrained(path)
        self.dtype = refs.dtype(dtype)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.max_tokens = int(self.model.config.max_text_len)
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.phrase_thresholds = dict(phrase_thresholds or {})
        self.top_k = top_k
        self.nms_iou = nms_iou

    def thresholds(self, phrase: str) -> tuple[float, float]:
        """(box, text) thresholds for one phrase: its override where set, else the detector's defaults."""
        own = self.phrase_thresholds.get(phrase, PhraseThresholds())
        return (self.box_threshold if own.box is None else own.box,
                self.text_threshold if own.text is None else own.text)

    def _token_count(self, text: str) -> int:
        return len(self.processor.tokenizer(text)["input_ids"])

    def pack(self, phrases: list[str]) -> list[list[int]]:
        """Group phrase indices into prompts that fit the token limit; one phrase too long alone is an error."""
        passes: list[list[int]] = []
        current: list[int] = []
        for i, phrase in enumerate(phrases):
            if self._token_count(f"{phrase} .") > self.max_tokens:
                raise ValueError(f"phrase {phrase!r} alone exceeds the detector's {self.max_tokens}-token limit")
            trial = [*current, i]
            if current and self._token_count(" . ".join(phrases[j] for j in trial) + " .") > self.max_tokens:
                passes.append(current)
                trial = [i]
            current = trial
        if current:
            passes.append(current)
        return passes

    def _phrase_token_spans(self, prompt: str, spans: list[tuple[int, int]]) -> list[list[int]]:
        enc = self.processor.tokenizer(prompt, return_offsets_mapping=True)
        tokens: list[list[int]] = [[] for _ in spans]
        for t, (s, e) in enumerate(enc["offset_mapping"]):
            if e <= s:
                continue  # special tokens
            for j, (ps, pe) in enumerate(spans):
                if s >= ps and e <= pe:
                    tokens[j].append(t)
        return tokens

    def _detect_pass(self, image: Image.Image, phrases: list[str]) -> list[BoxHit]:
        spans, pos = [], 0
        for p in phrases:
            spans.append((pos, pos + len(p)))
            pos += len(p) + 3  # " . "
        prompt = " . ".join(phrases) + " ."
        token_sets = self._phrase_token_spans(prompt, spans)
        if not all(token_sets):
            empty = [p for p, t in zip(phrases, token_sets, strict=True) if not t]
            raise ValueError(f"phrases {empty!r} have no tokens in the detector prompt")
        inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        if inputs["input_ids"].shape[1] > self.max_tokens:  # pack() keeps prompts under the limit; never truncate
            raise ValueError(f"detector prompt of {inputs['input_ids'].shape[1]} tokens exceeds {self.max_tokens}")
        with torch.no_grad():
            out = self.model(**inputs)
        probs = out.logits[0].float().sigmoid()  # (queries, max_text_len)
        best = torch.stack([probs[:, t].max(dim=1).values for t in token_sets], dim=1)  # (queries, phrases)
        mean = torch.stack([probs[:, t].mean(dim=1) for t in token_sets], dim=1)
        scores, labels = best.max(dim=1)
        text_scores = mean.gather(1, labels[:, None])[:, 0]
        w, h = image.size
        cx, cy, bw, bh = out.pred_boxes[0].float().unbind(-1)
        boxes = torch.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], dim=-1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        limits = torch.tensor([self.thresholds(p) for p in phrases], dtype=scores.dtype, device=scores.device)[labels]
        keep = (scores >= limits[:, 0]) & (text_scores >= limits[:, 1])
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        order = batched_nms(boxes.float(), scores.float(), labels, self.nms_iou)
        hits: list[BoxHit] = []
        per_label: dict[int, int] = {}
        for k in order.tolist():  # batched_nms returns indices by decreasing score
            label = int(labels[k])
            if per_label.get(label, 0) >= self.top_k:
                continue
            per_label[label] = per_label.get(label, 0) + 1
            hits.append(BoxHit(phrase=label, box=[round(float(v), 2) for v in boxes[k]], score=float(scores[k])))
        return hits

    def detect(self, image: np.ndarray, phrases: list[str]) -> list[BoxHit]:
        if not phrases:
            return []
        pil = Image.fromarray(image)
        hits: list[BoxHit] = []
        for group in self.pack(phrases):
            for hit in self._detect_pass(pil, [phrases[i] for i in group]):
                hits.append(BoxHit(phrase=group[hit.phrase], box=hit.box, score=hit.score))
        return hits
