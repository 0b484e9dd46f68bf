"""SAM2 video predictor (transformers Sam2Video) as a session-shaped `Tracker`; the same class runs SAM 3's
tracker (`Sam3TrackerVideo`: SAM 3 weights, SAM 2-style prompts) when the checkpoint is a SAM 3 one.

A session is one transformers inference session over a window of frames whose vision-feature cache holds
every frame of it: each propagation resets only the tracking state (`reset_tracking_data`), so a frame's
image features are computed once per window however many groups of objects are propagated over it. The
features of frames shared with the previous window (the overlap the online tracker keeps) are handed over
too, recognised by position and pixel digest, so across a video each frame costs about one backbone pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import torch

from annotator import masks
from annotator.models import refs
from annotator.models.protocols import FrameMasks, Prompt


def _digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()


def _classes(path: str) -> tuple[type, type]:
    """(model, processor) classes for a checkpoint: SAM 3 ones (video or tracker) load SAM 3's tracker."""
    import transformers

    model_type = transformers.AutoConfig.from_pretrained(path).model_type
    if model_type.startswith("sam3"):
        return transformers.Sam3TrackerVideoModel, transformers.Sam3TrackerVideoProcessor
    return transformers.Sam2VideoModel, transformers.Sam2VideoProcessor


class Sam2VideoTracker:
    def __init__(self, model: str, device: str = "auto", dtype: str = "float32") -> None:
        path = refs.resolve(model)
        model_cls, processor_cls = _classes(path)
        self.device = refs.device(device)
        self.dtype = refs.dtype(dtype)
        self.processor = processor_cls.from_pretrained(path)
        self.model = model_cls.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self._last: Sam2Session | None = None  # the previous window's session, whose features the next may reuse

    def open(self, frames: np.ndarray, positions: list[int]) -> Sam2Session:
        session = Sam2Session(self, frames, positions, [_digest(f) for f in frames])
        if self._last is not None:
            mine = {key: i for i, key in enumerate(zip(positions, session.digests, strict=True))}
            for j, features in self._last.state.cache._vision_features.items():
                i = mine.get((self._last.positions[j], self._last.digests[j]))
                if i is not None:
                    session.state.cache._vision_features[i] = features
        self._last = session  # older windows are let go
        return session


class Sam2Session:
    def __init__(self, tracker: Sam2VideoTracker, frames: np.ndarray, positions: list[int],
                 digests: list[bytes]) -> None:
        self.tracker = tracker
        self.positions = list(positions)
        self.digests = digests
        self.state = tracker.processor.init_video_session(
            video=list(frames), inference_device=tracker.device, dtype=tracker.dtype,
            max_vision_features_cache_size=len(frames))
        self.prompts: dict[int, Prompt] = {}

    def _local(self, position: int) -> int:
        return self.positions.index(position)

    def _masks(self, pred_masks: torch.Tensor) -> np.ndarray:
        size = [[self.state.video_height, self.state.video_width]]
        found = self.tracker.processor.post_process_masks([pred_masks.float()], original_sizes=size, binarize=True)[0]
        # column-major per mask (transposed on the device, nearly free on a GPU): RLE encoding then copies nothing
        return found[:, 0].transpose(-1, -2).contiguous().cpu().numpy().transpose(0, 2, 1)

    def _add(self, frame: int, ids: list[int], **prompt: object) -> None:
        # a copy: the processor consumes the id list it is given
        self.tracker.processor.add_inputs_to_inference_session(inference_session=self.state, frame_idx=frame,
                                                               obj_ids=list(ids), **prompt)

    def add(self, prompts: list[Prompt]) -> None:
        for p in prompts:
            if p.frame not in self.positions:
                raise ValueError(f"prompt on frame {p.frame}, outside this session's frames")
            self.prompts[p.obj_id] = p

    def _condition(self, prompts: list[Prompt]) -> None:
        by_frame: dict[tuple[int, str], list[Prompt]] = {}
        for p in prompts:
            kind = "points" if p.points else "mask" if p.mask is not None else "box"
            by_frame.setdefault((p.frame, kind), []).append(p)
        for (frame, kind), group in by_frame.items():
            local, ids = self._local(frame), [p.obj_id for p in group]
            if kind == "points":
                self._add(local, ids, input_points=[[[[x, y] for x, y, _ in p.points or []] for p in group]],
                          input_labels=[[[label for *_, label in p.points or []] for p in group]])
            elif kind == "mask":
                self._add(local, ids, input_masks=[p.mask for p in group])
            else:
                self._add(local, ids, input_boxes=[[p.box for p in group]])

    @torch.no_grad()
    def propagate(self, start: int, reverse: bool = False, objects: list[int] | None = None) -> Iterator[FrameMasks]:
        ids = list(self.prompts) if objects is None else list(objects)
        if not ids:
            return
        self.state.reset_tracking_data()  # objects only: the vision-feature cache stays
        self._condition([self.prompts[i] for i in ids])
        for frame in sorted({self.prompts[i].frame for i in ids}):
            self.tracker.model(inference_session=self.state, frame_idx=self._local(frame))  # conditioning memory
        for out in self.tracker.model.propagate_in_video_iterator(self.state, start_frame_idx=self._local(start),
                                                                 reverse=reverse):
            found = self._masks(out.pred_masks)
            scores = out.object_score_logits.float().flatten().sigmoid().tolist()
            yield FrameMasks(self.positions[out.frame_idx], {i: found[k] for k, i in enumerate(out.object_ids)},
                             {i: round(float(scores[k]), 6) for k, i in enumerate(out.object_ids)})

    @torch.no_grad()
    def segment(self, position: int, boxes: list[list[float]]) -> np.ndarray:
        if not boxes:
            return np.zeros((0, self.state.video_height, self.state.video_width), dtype=bool)
        self.state.reset_tracking_data()
        ids = list(range(1, len(boxes) + 1))
        self._add(self._local(position), ids, input_boxes=[boxes])
        out = self.tracker.model(inference_session=self.state, frame_idx=self._local(position))
        found = self._masks(out.pred_masks)
        self.state.reset_tracking_data()
        return masks.stack_column_major([found[out.object_ids.index(i)] for i in ids])

