"""SAM 3 video (transformers Sam3Video): every instance of each text phrase found and tracked in one model.

One call covers one window of frames (a fresh session each time: memory stays bounded by the window, whatever
the video's length); the stage stitches windows together. SAM 3's ids restart in each session, so the
window's objects are returned under its own ids with their phrase, masks, scores and first box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from annotator.models import refs


class _Repeats(logging.Filter):
    """SAM 3 logs the object cap once per frame once it is reached: once is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "max_num_objects" not in record.getMessage()


@dataclass
class WindowObject:
    phrase: str  # the text prompt that found it
    detection_score: float  # the detector's score when the object was created
    box: list[float]  # x0, y0, x1, y1 on its first frame
    first: int  # local frame where it appears first
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # local frame -> (H, W) bool
    scores: dict[int, float] = field(default_factory=dict)  # local frame -> tracker score


class Sam3VideoSegmenter:
    def __init__(self, model: str, device: str = "auto", dtype: str = "float32") -> None:
        from transformers import Sam3VideoModel, Sam3VideoProcessor

        logging.getLogger("transformers.models.sam3_video.modeling_sam3_video").addFilter(_Repeats())
        path = refs.resolve(model)
        self.device = refs.device(device)
        self.processor = Sam3VideoProcessor.from_pretrained(path)
        self.dtype = refs.dtype(dtype)
        self.model = Sam3VideoModel.from_pretrained(path, dtype=self.dtype).to(self.device).eval()

    @torch.inference_mode()
    def window(self, frames: np.ndarray, phrases: list[str]) -> dict[int, WindowObject]:
        """Objects of one window by SAM 3's id for it: each phrase a text prompt, every frame tracked."""
        if not phrases or not len(frames):
            return {}
        session = self.processor.init_video_session(video=list(frames), inference_device=self.device,
                                                    dtype=self.dtype)
        self.processor.add_text_prompt(session, list(dict.fromkeys(phrases)))
        objects: dict[int, WindowObject] = {}
        for out in self.model.propagate_in_video_iterator(session):
            found = self.processor.postprocess_outputs(session, out)
            prompt_of = {i: text for text, ids in found["prompt_to_obj_ids"].items() for i in ids}
            tracker_scores = out.obj_id_to_tracker_score or {}
            for k, obj_id in enumerate(found["object_ids"].tolist()):
                mask = found["masks"][k].cpu().numpy().astype(bool)
                obj = objects.get(obj_id)
                if obj is None:
                    obj = objects[obj_id] = WindowObject(
                        phrase=prompt_of[obj_id], detection_score=round(float(found["scores"][k]), 6),
                        box=[round(float(v), 2) for v in found["boxes"][k].tolist()], first=out.frame_idx)
                obj.masks[out.frame_idx] = mask
                obj.scores[out.frame_idx] = round(float(tracker_scores.get(obj_id, found["scores"][k])), 6)
        return objects
