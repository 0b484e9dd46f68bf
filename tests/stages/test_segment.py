"""The SAM 3 segment stage: ids stable across windows, thresholds per phrase, and the demo pipeline end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from annotator import masks, paths
from annotator.models.sam3_video import WindowObject
from annotator.records import Phrase, VideoInfo, VideoItem
from annotator.stages.segment import SegmentStage, segment_item
from annotator.video import read_frames
from tests.conftest import SAMPLE
from tests.helpers import export_rows

H, W = 48, 64


def item(frames: int, phrases: list[str]) -> VideoItem:
    info = VideoInfo(width=W, height=H, fps=10.0, num_frames=frames, frame_indices=list(range(frames)), keyframes=[0])
    return VideoItem("v", "/v.mp4", info=info, phrases=[Phrase(p, 0, len(p), p) for p in phrases])


def scripted(truth: dict[str, np.ndarray], ids_from: int = 0) -> tuple[Callable, list[tuple[int, int]]]:
    """A SAM 3 stand-in: per phrase one object with the true masks, under ids that restart every window (as
    SAM 3's do) and in a shuffled order."""
    calls = []

    def window(frames: np.ndarray, phrases: list[str]) -> dict[int, WindowObject]:
        start = frames[0, 0, 0, 0]  # the test's frames carry their position in their first pixel
        calls.append((int(start), len(frames)))
        out = {}
        for n, phrase in enumerate(reversed(phrases)):
            stack = truth[phrase][start:start + len(frames)]
            visible = [f for f in range(len(frames)) if stack[f].any()]
            if visible:
                out[ids_from + n] = WindowObject(phrase, 0.9 if phrase != "cat" else 0.3, [0, 0, 1, 1], visible[0],
                                                 {f: stack[f] for f in visible}, {f: 0.8 for f in visible})
        return out

    return window, calls


def test_ids_stay_stable_across_windows_and_thresholds_apply_per_phrase() -> None:
    n = 12
    truth = {p: np.zeros((n, H, W), bool) for p in ("dog", "ball", "cat")}
    for f in range(n):
        truth["dog"][f, 5:20, f:f + 10] = True
        truth["cat"][f, 30:40, 40:50] = True
        if f >= 6:  # enters in the second window, after its shared frames
            truth["ball"][f, 25:35, 2 * f:2 * f + 8] = True
    window, calls = scripted(truth)
    frames = lambda p: np.stack([np.full((H, W, 3), q, np.uint8) for q in p])  # noqa: E731
    stage = SegmentStage(window=5, score_threshold=0.5, phrase_thresholds={"cat": 0.2})
    out = segment_item(window, stage, item(n, ["dog", "ball", "cat"]), frames)
    assert calls == [(0, 5), (3, 5), (6, 5), (9, 3)], "windows sharing two frames"
    tracks = {t.phrase: t for t, _ in out}
    assert sorted(tracks) == [0, 1, 2] and len(out) == 3, "one track per object over four windows"
    assert tracks[0].masks.frames == list(range(n)) and tracks[2].masks.frames == list(range(n))
    assert tracks[1].first_frame == 6 and tracks[1].prompt_frame == 6
    for t, det in out:
        gt = truth[["dog", "ball", "cat"][t.phrase]]
        assert np.array_equal(masks.decode_batch(t.masks.rles, H, W), gt[t.masks.frames])
        assert det.frame == t.prompt_frame and det.phrase == t.phrase
    strict = segment_item(scripted(truth)[0], SegmentStage(window=5, score_threshold=0.5), item(n, ["dog", "cat"]),
                          frames)
    assert [t.phrase for t, _ in strict] == [0], "cat's 0.3 is below the default 0.5"


def test_tiny_sam3_keeps_ids_across_three_windows(tiny_models: dict[str, str]) -> None:
    stage = SegmentStage(model=tiny_models["sam3_video"], window=6, overlap=2, score_threshold=0.0,
                         iou_threshold=0.3)
    stage.setup()
    clip = read_frames(SAMPLE, list(range(0, 120, 10)))[:, ::4, ::4]  # 12 frames of 180x320
    info = VideoInfo(width=320, height=180, fps=2.5, num_frames=12, frame_indices=list(range(12)), keyframes=[0])
    it = VideoItem("s", str(SAMPLE), info=info, phrases=[Phrase("rabbit", 0, 6, "rabbit"), Phrase("tree", 7, 11,
                                                                                                   "tree")])
    seen = []
    out = segment_item(lambda f, p: seen.append(len(f)) or stage._segmenter.window(f, p), stage, it,
                       lambda p: clip[p])
    assert seen == [6, 6, 4], "three windows"
    whole = [t for t, _ in out if t.first_frame == 0 and t.masks.frames == list(range(12))]
    assert {t.phrase for t in whole} == {0, 1}, "an object of each phrase keeps its id through all three windows"
    assert len({t.track_id for t, _ in out}) == len(out)
    for t, _ in out:
        assert masks.decode_batch(t.masks.rles, 180, 320).shape == (len(t.masks.frames), 180, 320)


@pytest.mark.slow
def test_demo_sam3_pipeline_runs_end_to_end(tiny_models: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "annotator.cli", "run", str(paths.PIPELINES_DIR / "demo_sam3.yaml"),
                             "-i", str(paths.SAMPLES_DIR), "-o", str(run), "--executor", "local"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]][3] == "segment"
    objects = export_rows(run, "objects")
    (qa,) = export_rows(run, "qa")
    assert objects and qa["answer"].count("[SEG]") == len(qa["object_ids"]) == len(objects)
    for obj in objects:
        assert masks.decode_batch(obj["mask_rles"], obj["height"], obj["width"]).any()
