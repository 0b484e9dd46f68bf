"""Record the model calls a stage makes, then make the same calls on bare transformers models.

The recorders wrap our model wrappers (`GroundingDinoDetector`, `Sam2VideoTracker`, `Sam3VideoSegmenter`) and
note each call's frames and prompts while the stage runs; the replays call the transformers processor and
model directly with those inputs, as a user with no pipeline would. Stage time over replay time is what our
stage adds around the model: frame reading, prompt packing, post-processing, tracking logic, mask encoding.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from annotator.models.memory import tensor_bytes


def snapshot(state: Any) -> tuple[dict[str, int], int]:
    """Bytes a video session holds (by attribute) and how many (object, frame) outputs it holds."""
    outputs = sum(len(per.get("cond_frame_outputs", {})) + len(per.get("non_cond_frame_outputs", {}))
                  for per in state.output_dict_per_obj.values())
    return tensor_bytes(state), outputs


class DetectorRecorder:
    """Stands in for the stage's detector: every prompt pass is recorded, then run by the real detector."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.passes: list[tuple[np.ndarray, str]] = []
        real = detector._detect_pass

        def recorded(image: Image.Image, phrases: list[str]) -> Any:
            self.passes.append((np.asarray(image), " . ".join(phrases) + " ."))
            return real(image, phrases)

        detector._detect_pass = recorded

    @torch.no_grad()
    def _call(self, image: np.ndarray, prompt: str) -> None:
        inputs = self.detector.processor(images=Image.fromarray(image), text=prompt,
                                         return_tensors="pt").to(self.detector.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.detector.dtype)
        self.detector.model(**inputs)

    def warm_up(self, frame: np.ndarray, phrases: list[str]) -> None:
        """One bare call before anything is timed: one-time costs (kernels, allocator) fall on neither side."""
        self._call(frame, " . ".join(phrases) + " .")

    def replay(self) -> float:
        started = time.perf_counter()
        for image, prompt in self.passes:
            self._call(image, prompt)
        return time.perf_counter() - started


class TrackerRecorder:
    """Stands in for the stage's tracker: sessions, prompts, propagations and single-frame segmentations."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.calls: list[tuple[str, Any]] = []
        self.sessions: list[Any] = []
        self.held: tuple[dict[str, int], int] = ({}, 0)  # the fullest session seen in the replay
        real_open = tracker.open

        def open_(frames: np.ndarray, positions: list[int]) -> Any:
            session = real_open(frames, positions)
            self.calls.append(("open", (frames, list(positions))))
            self.sessions.append(session)
            real_propagate, real_segment = session.propagate, session.segment

            def propagate(start: int, reverse: bool = False, objects: list[int] | None = None) -> Any:
                ids = list(session.prompts) if objects is None else list(objects)
                self.calls.append(("propagate", (start, reverse, [session.prompts[i] for i in ids])))
                return real_propagate(start, reverse, objects)

            def segment(position: int, boxes: list[list[float]]) -> np.ndarray:
                self.calls.append(("segment", (position, [list(b) for b in boxes])))
                return real_segment(position, boxes)

            session.propagate, session.segment = propagate, segment
            return session

        tracker.open = open_

    @torch.no_grad()
    def warm_up(self, frame: np.ndarray, phrases: list[str]) -> None:
        """One bare single-frame segmentation before anything is timed."""
        h, w = frame.shape[:2]
        state = self.tracker.processor.init_video_session(video=[frame], inference_device=self.tracker.device,
                                                          dtype=self.tracker.dtype)
        self.tracker.processor.add_inputs_to_inference_session(inference_session=state, frame_idx=0, obj_ids=[1],
                                                               input_boxes=[[[w / 4, h / 4, w / 2, h / 2]]])
        self.tracker.model(inference_session=state, frame_idx=0)

    @torch.no_grad()
    def replay(self) -> float:
        processor, model, device = self.tracker.processor, self.tracker.model, self.tracker.device
        state, positions = None, []
        started = time.perf_counter()
        for kind, args in self.calls:
            if kind == "open":
                frames, positions = args
                state = processor.init_video_session(video=list(frames), inference_device=device,
                                                     dtype=self.tracker.dtype,
                                                     max_vision_features_cache_size=len(frames))
                continue
            state.reset_tracking_data()
            size = [[state.video_height, state.video_width]]
            if kind == "segment":
                position, boxes = args
                if boxes:
                    processor.add_inputs_to_inference_session(
                        inference_session=state, frame_idx=positions.index(position),
                        obj_ids=list(range(1, len(boxes) + 1)), input_boxes=[boxes])
                    out = model(inference_session=state, frame_idx=positions.index(position))
                    processor.post_process_masks([out.pred_masks], original_sizes=size, binarize=True)
                continue
            start, reverse, prompts = args
            groups: dict[tuple[int, str], list[Any]] = {}  # one call per frame and kind (transformers needs that)
            for p in prompts:
                kind = "points" if p.points else "mask" if p.mask is not None else "box"
                groups.setdefault((p.frame, kind), []).append(p)
            for (frame, kind), group in groups.items():
                prompt = ({"input_points": [[[[x, y] for x, y, _ in p.points] for p in group]],
                           "input_labels": [[[label for *_, label in p.points] for p in group]]} if kind == "points"
                          else {"input_masks": [p.mask for p in group]} if kind == "mask"
                          else {"input_boxes": [[p.box for p in group]]})
                processor.add_inputs_to_inference_session(inference_session=state, frame_idx=positions.index(frame),
                                                          obj_ids=[p.obj_id for p in group], **prompt)
            for frame in sorted({p.frame for p in prompts}):
                model(inference_session=state, frame_idx=positions.index(frame))
            for out in model.propagate_in_video_iterator(state, start_frame_idx=positions.index(start),
                                                         reverse=reverse):
                processor.post_process_masks([out.pred_masks], original_sizes=size, binarize=True)
            paused = time.perf_counter()
            held = snapshot(state)
            self.held = max(self.held, held, key=lambda h: h[1])
            started += time.perf_counter() - paused  # the measurement is not the model's time
        return time.perf_counter() - started


class SegmenterRecorder:
    """Stands in for the stage's SAM 3 segmenter: each window's frames and phrases."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        self.windows: list[tuple[np.ndarray, list[str]]] = []
        self.held: tuple[dict[str, int], int] = ({}, 0)
        real = segmenter.window

        def window(frames: np.ndarray, phrases: list[str]) -> dict:
            self.windows.append((frames, list(phrases)))
            return real(frames, phrases)

        segmenter.window = window

    def warm_up(self, frame: np.ndarray, phrases: list[str]) -> None:
        """One bare single-frame window before anything is timed."""
        self.windows.append((frame[None], phrases[:1]))
        self.replay()
        self.windows.clear()
        self.held = ({}, 0)

    @torch.inference_mode()
    def replay(self) -> float:
        processor, model, device = self.segmenter.processor, self.segmenter.model, self.segmenter.device
        started = time.perf_counter()
        for frames, phrases in self.windows:
            session = processor.init_video_session(video=list(frames), inference_device=device,
                                                   dtype=self.segmenter.dtype)
            processor.add_text_prompt(session, list(dict.fromkeys(phrases)))
            for out in model.propagate_in_video_iterator(session):
                processor.postprocess_outputs(session, out)
            paused = time.perf_counter()
            self.held = max(self.held, snapshot(session), key=lambda h: h[1])
            started += time.perf_counter() - paused
        return time.perf_counter() - started
