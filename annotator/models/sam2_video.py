"""SAM2 video predictor (transformers Sam2Video) as a `Tracker`: box prompts on keyframes, propagate forward."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from annotator.models import refs
from annotator.models.protocols import BoxPrompt, TrackResult


class Sam2VideoTracker:
    def __init__(self, model: str, device: str = "auto") -> None:
        from transformers import Sam2VideoModel, Sam2VideoProcessor

        path = refs.resolve(model)
        self.device = refs.device(device)
        self.processor = Sam2VideoProcessor.from_pretrained(path)
        self.model = Sam2VideoModel.from_pretrained(path).to(self.device).eval()

    @torch.no_grad()
    def track(self, frames: np.ndarray, prompts: list[BoxPrompt]) -> dict[int, TrackResult]:
        if not prompts:
            return {}
        session = self.processor.init_video_session(
            video=list(frames), inference_device=self.device, dtype=torch.float32
        )
        by_frame: dict[int, list[BoxPrompt]] = defaultdict(list)
        for p in prompts:
            by_frame[p.frame].append(p)
        for frame in sorted(by_frame):  # each prompt frame is run once so it becomes a conditioning memory
            group = by_frame[frame]
            self.processor.add_inputs_to_inference_session(
                inference_session=session, frame_idx=frame, obj_ids=[p.obj_id for p in group],
                input_boxes=[[p.box for p in group]],
            )
            self.model(inference_session=session, frame_idx=frame)
        start = {p.obj_id: p.frame for p in prompts}
        frames_out: dict[int, list[int]] = defaultdict(list)
        masks_out: dict[int, list[np.ndarray]] = defaultdict(list)
        scores_out: dict[int, list[float]] = defaultdict(list)
        size = [[session.video_height, session.video_width]]
        for out in self.model.propagate_in_video_iterator(session, start_frame_idx=min(start.values())):
            masks = self.processor.post_process_masks([out.pred_masks], original_sizes=size, binarize=True)[0]
            scores = out.object_score_logits.flatten().sigmoid().tolist()
            for k, obj_id in enumerate(out.object_ids):
                if out.frame_idx < start[obj_id]:
                    continue  # before this object's prompt: not tracked yet (backward pass: tracking issue)
                frames_out[obj_id].append(out.frame_idx)
                masks_out[obj_id].append(masks[k, 0].cpu().numpy())
                scores_out[obj_id].append(round(float(scores[k]), 6))
        return {
            obj_id: TrackResult(frames=frames_out[obj_id], masks=np.stack(masks_out[obj_id]), scores=scores_out[obj_id])
            for obj_id in frames_out
        }
