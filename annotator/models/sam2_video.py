"""SAM2 video predictor (transformers Sam2Video) as a `Tracker`: box or mask prompts, forward or backward."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from annotator import masks
from annotator.models import refs
from annotator.models.protocols import Prompt, TrackResult

if TYPE_CHECKING:
    from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession


class Sam2VideoTracker:
    def __init__(self, model: str, device: str = "auto") -> None:
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        path = refs.resolve(model)
        self.device = refs.device(device)
        self.processor = Sam2VideoProcessor.from_pretrained(path)
        self.model = Sam2VideoModel.from_pretrained(path).to(self.device).eval()

    def _session(self, frames: np.ndarray) -> Sam2VideoInferenceSession:
        return self.processor.init_video_session(video=list(frames), inference_device=self.device,
                                                 dtype=torch.float32)

    def _masks(self, session: Sam2VideoInferenceSession, pred_masks: torch.Tensor) -> np.ndarray:
        size = [[session.video_height, session.video_width]]
        masks = self.processor.post_process_masks([pred_masks], original_sizes=size, binarize=True)[0]
        # column-major per mask (transposed on the device, nearly free on a GPU): RLE encoding then copies nothing
        return masks[:, 0].transpose(-1, -2).contiguous().cpu().numpy().transpose(0, 2, 1)

    def _add(self, session: Sam2VideoInferenceSession, frame: int, ids: list[int], **prompt: object) -> None:
        # a copy: the processor consumes the id list it is given
        self.processor.add_inputs_to_inference_session(inference_session=session, frame_idx=frame,
                                                       obj_ids=list(ids), **prompt)

    @torch.no_grad()
    def segment(self, frame: np.ndarray, position: int, boxes: list[list[float]]) -> np.ndarray:
        if not boxes:
            return np.zeros((0, *frame.shape[:2]), dtype=bool)
        session = self._session(frame[None])
        ids = list(range(1, len(boxes) + 1))
        self._add(session, 0, ids, input_boxes=[boxes])
        out = self.model(inference_session=session, frame_idx=0)
        found = self._masks(session, out.pred_masks)
        return masks.stack_column_major([found[out.object_ids.index(i)] for i in ids])

    @torch.no_grad()
    def propagate(self, frames: np.ndarray, positions: list[int], prompts: list[Prompt],
                  reverse: bool = False) -> dict[int, TrackResult]:
        if not prompts:
            return {}
        (start,) = {p.frame for p in prompts}
        local = positions.index(start)
        session = self._session(frames)
        ids = [p.obj_id for p in prompts]
        if all(p.points for p in prompts):
            self._add(session, local, ids, input_points=[[[[x, y] for x, y, _ in p.points or []] for p in prompts]],
                      input_labels=[[[label for *_, label in p.points or []] for p in prompts]])
        elif all(p.mask is not None for p in prompts):
            self._add(session, local, ids, input_masks=[p.mask for p in prompts])
        else:
            self._add(session, local, ids, input_boxes=[[p.box for p in prompts]])
        self.model(inference_session=session, frame_idx=local)  # the prompt frame becomes a conditioning memory
        frames_out: dict[int, list[int]] = defaultdict(list)
        masks_out: dict[int, list[np.ndarray]] = defaultdict(list)
        scores_out: dict[int, list[float]] = defaultdict(list)
        for out in self.model.propagate_in_video_iterator(session, start_frame_idx=local, reverse=reverse):
            found = self._masks(session, out.pred_masks)
            scores = out.object_score_logits.flatten().sigmoid().tolist()
            for k, obj_id in enumerate(out.object_ids):
                frames_out[obj_id].append(positions[out.frame_idx])
                masks_out[obj_id].append(found[k])
                scores_out[obj_id].append(round(float(scores[k]), 6))
        return {
            i: TrackResult(frames=frames_out[i], masks=masks.stack_column_major(masks_out[i]), scores=scores_out[i])
            for i in ids if frames_out[i]
        }
