"""Detect: Grounding DINO boxes for every phrase on every keyframe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from annotator.models.protocols import Detector, PhraseThresholds
from annotator.records import Detection, VideoItem
from annotator.stage import Count, PerItemStage, Probability, Resources, register


@register
@dataclass
class DetectStage(PerItemStage):
    name = "detect"
    resources = Resources(cpus=1.0, gpus=0.25)
    outputs = ("detections",)
    runtime_params = ("device",)

    model: str = "IDEA-Research/grounding-dino-base"
    box_threshold: Probability = 0.35  # best token probability of the box's phrase
    text_threshold: Probability = 0.0  # mean token probability over the box's phrase (0: off; not calibrated here)
    phrase_thresholds: dict[str, PhraseThresholds] = field(default_factory=dict)  # keyed by detector phrase
    top_k: Count = 3  # boxes kept per phrase per keyframe
    nms_iou: Probability = 0.5
    device: str = "auto"  # the GPU when there is one
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # bfloat16 halves memory on a GPU

    def setup(self) -> None:
        from annotator.models.grounding_dino import GroundingDinoDetector

        self._detector: Detector = GroundingDinoDetector(
            self.model, self.box_threshold, self.top_k, self.nms_iou, self.text_threshold, self.phrase_thresholds,
            self.device, self.dtype)

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        item.detections = []
        if not item.phrases:
            return item
        keyframes = item.info.keyframes
        frames = self.frames(item, keyframes)
        norms = [p.norm for p in item.phrases]
        for k, frame in zip(keyframes, frames, strict=True):
            for hit in self._detector.detect(frame, norms):
                item.detections.append(Detection(frame=k, phrase=hit.phrase, box=hit.box, score=hit.score))
        return item
