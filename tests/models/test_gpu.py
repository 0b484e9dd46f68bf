"""On CUDA (skipped without it): the tracker's weights and session live on the GPU, its masks agree with the
CPU's on the same prompts, and GPU memory does not grow from one window to the next."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.models.protocols import Prompt, collect
from annotator.models.sam2_video import Sam2VideoTracker
from annotator.video import read_frames
from tests.conftest import SAMPLE

pytestmark = pytest.mark.gpu
BOX = [40.0, 30.0, 200.0, 150.0]


def track(tracker: Sam2VideoTracker, frames: np.ndarray, start: int) -> np.ndarray:
    positions = list(range(start, start + len(frames)))
    session = tracker.open(frames, positions)
    session.add([Prompt(1, start, box=BOX)])
    return collect(session.propagate(start, objects=[1]))[1].masks


def test_the_tracker_runs_on_cuda_like_on_the_cpu_and_releases_its_windows(tiny_models: dict[str, str]) -> None:
    frames = read_frames(SAMPLE, list(range(0, 120, 10)))[:, ::4, ::4]  # 12 frames of 180x320
    gpu = Sam2VideoTracker(tiny_models["sam2_video"], device="cuda")
    assert {p.device.type for p in gpu.model.parameters()} == {"cuda"}
    cpu = Sam2VideoTracker(tiny_models["sam2_video"], device="cpu")
    on_gpu, on_cpu = track(gpu, frames[:4], 0), track(cpu, frames[:4], 0)
    assert on_gpu.shape == on_cpu.shape == (4, 180, 320)
    union = (on_gpu | on_cpu).sum()
    assert union == 0 or (on_gpu & on_cpu).sum() / union > 0.98, "the same masks, up to kernel rounding"
    peaks = []
    for window in range(3):  # a long video: windows of 4 frames one after another
        torch.cuda.reset_peak_memory_stats()
        track(gpu, frames[4 * window: 4 * window + 4], 100 * window)
        peaks.append(torch.cuda.max_memory_allocated())
    assert peaks[2] <= peaks[0] * 1.05 + 2**20, f"memory grows window to window: {peaks}"


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_detector_and_tracker_run_in_the_dtype_asked_for_on_cuda(tiny_models: dict[str, str], dtype: str) -> None:
    from annotator.models.grounding_dino import GroundingDinoDetector

    frames = read_frames(SAMPLE, [0, 10, 20, 30])[:, ::4, ::4]
    detector = GroundingDinoDetector(tiny_models["grounding_dino"], box_threshold=0.0, device="cuda", dtype=dtype)
    assert {(p.device.type, str(p.dtype)) for p in detector.model.parameters()} == {("cuda", f"torch.{dtype}")}
    hits = detector.detect(frames[0], ["rabbit", "tree"])
    assert hits and all(isinstance(v, float) for h in hits for v in h.box)
    tracker = Sam2VideoTracker(tiny_models["sam2_video"], device="cuda", dtype=dtype)
    assert {str(p.dtype) for p in tracker.model.parameters()} == {f"torch.{dtype}"}
    masks = track(tracker, frames, 0)
    assert masks.shape == (4, 180, 320) and masks.dtype == bool


def test_sam3_windows_on_cuda_release_their_memory(tiny_models: dict[str, str]) -> None:
    from annotator.models.sam3_video import Sam3VideoSegmenter

    frames = read_frames(SAMPLE, list(range(0, 120, 10)))[:, ::4, ::4]
    segmenter = Sam3VideoSegmenter(tiny_models["sam3_video"], device="cuda", dtype="bfloat16")
    peaks = []
    for window in range(3):
        torch.cuda.reset_peak_memory_stats()
        objects = segmenter.window(frames[4 * window: 4 * window + 4], ["rabbit", "tree"])
        assert all(m.shape == (180, 320) for o in objects.values() for m in o.masks.values())
        peaks.append(torch.cuda.max_memory_allocated())
    assert peaks[2] <= peaks[0] * 1.05 + 2**20, f"memory grows window to window: {peaks}"
