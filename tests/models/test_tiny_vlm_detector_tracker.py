"""Model adapters with tiny *real* architectures, loaded through the production from_pretrained path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from annotator.cli import app
from annotator.models.grounding_dino import GroundingDinoDetector
from annotator.models.protocols import BoxPrompt, CaptionRequest
from annotator.models.sam2_video import Sam2VideoTracker
from annotator.models.tiny import CAPTION_WORDS
from annotator.models.vlm_local import LocalVLM
from annotator.video import read_frames
from tests.conftest import SAMPLE


def test_models_tiny_cli_writes_loadable_checkpoints(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "tiny", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for role in ("qwen2_vl", "grounding_dino", "sam2_video"):
        assert (tmp_path / role / "config.json").exists()
        assert (tmp_path / role / "model.safetensors").exists()
    detector = GroundingDinoDetector(str(tmp_path / "grounding_dino"))
    assert detector.max_tokens == 32


def test_local_vlm_generates_vocabulary_words(tiny_models: dict[str, str]) -> None:
    vlm = LocalVLM(tiny_models["qwen2_vl"], max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    frames = read_frames(SAMPLE, [0, 30, 60])  # odd count: padded to pairs for the video patcher
    first, second = vlm.caption([CaptionRequest(frames, "describe the video ."), CaptionRequest(frames, "describe")])
    assert isinstance(first, str) and isinstance(second, str)
    words = first.split()
    assert 1 <= len(words) <= 6 and set(words) <= set(CAPTION_WORDS)
    assert vlm.caption([CaptionRequest(frames, "describe the video .")]) == [first]  # greedy: deterministic


def test_detector_labels_are_phrase_indices_and_boxes_in_image(tiny_models: dict[str, str]) -> None:
    detector = GroundingDinoDetector(tiny_models["grounding_dino"], box_threshold=0.0, top_k=2)
    image = read_frames(SAMPLE, [40])[0]
    phrases = ["rabbit", "tree", "white butterfly"]
    hits = detector.detect(image, phrases)
    assert hits, "threshold 0 keeps boxes"
    for hit in hits:
        assert 0 <= hit.phrase < len(phrases)
        x0, y0, x1, y1 = hit.box
        assert 0 <= x0 <= x1 <= 1280 and 0 <= y0 <= y1 <= 720
    counts = np.bincount([h.phrase for h in hits], minlength=3)
    assert counts.max() <= 2


def test_detector_splits_long_prompts_into_passes(tiny_models: dict[str, str]) -> None:
    detector = GroundingDinoDetector(tiny_models["grounding_dino"], box_threshold=0.0, top_k=1)
    phrases = [f"{c} {n}" for c in ("red", "white", "green", "big", "small") for n in ("rabbit", "tree", "cup")]
    passes = detector.pack(phrases)
    assert len(passes) > 1 and sorted(i for p in passes for i in p) == list(range(len(phrases)))
    for group in passes:
        prompt = " . ".join(phrases[i] for i in group) + " ."
        assert len(detector.processor.tokenizer(prompt)["input_ids"]) <= detector.max_tokens
    hits = detector.detect(read_frames(SAMPLE, [0])[0], phrases)
    assert {h.phrase for h in hits} <= set(range(len(phrases)))
    assert max(h.phrase for h in hits) >= passes[0][-1] + 1, "later passes contribute labels"


def test_tracker_masks_start_at_each_prompt_frame(tiny_models: dict[str, str]) -> None:
    tracker = Sam2VideoTracker(tiny_models["sam2_video"])
    frames = read_frames(SAMPLE, list(range(0, 60, 10)))[:, ::4, ::4]  # 6 frames of 180x320
    prompts = [BoxPrompt(obj_id=1, frame=0, box=[10, 10, 120, 90]),
               BoxPrompt(obj_id=2, frame=3, box=[150, 40, 300, 170])]
    result = tracker.track(frames, prompts)
    assert set(result) == {1, 2}
    assert result[1].frames == [0, 1, 2, 3, 4, 5] and result[2].frames == [3, 4, 5]
    assert result[1].masks.shape == (6, 180, 320) and result[1].masks.dtype == bool
    assert len(result[2].scores) == 3 and all(0 <= s <= 1 for s in result[2].scores)
    again = tracker.track(frames, prompts)
    assert np.array_equal(again[2].masks, result[2].masks)
