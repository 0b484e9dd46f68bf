"""Model adapters with tiny *real* architectures, loaded through the production from_pretrained path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.models.grounding_dino import GroundingDinoDetector
from annotator.models.protocols import CaptionRequest, PhraseThresholds, Prompt, collect
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


@pytest.mark.parametrize(("role", "family"), [("grounding_dino", "GroundingDinoForObjectDetection"),
                                              ("mm_grounding_dino", "MMGroundingDinoForObjectDetection")])
def test_300_phrases_run_in_several_untruncated_passes_with_exact_labels(tiny_models: dict[str, str], role: str,
                                                                        family: str) -> None:
    detector = GroundingDinoDetector(tiny_models[role], box_threshold=0.0, top_k=20)
    assert type(detector.model).__name__ == family, "loaded through AutoModelForZeroShotObjectDetection"
    adjectives = ["red", "white", "green", "big", "small"]
    nouns = ["man", "cup", "dog", "cat", "person", "ball", "car", "rabbit", "butterfly", "tree", "bird", "apple",
             "flower", "grass", "rock", "sky", "hill", "hand", "table"]
    phrases = [f"{a} {b} {n}" for a in adjectives for b in adjectives if a != b for n in nouns][:300]
    assert len(set(phrases)) == 300
    seen: list[list[int]] = []  # what the model was really given, pass by pass
    hook = detector.model.register_forward_pre_hook(
        lambda _m, _a, kw: seen.append(kw["input_ids"][0].tolist()), with_kwargs=True)
    try:
        hits = detector.detect(read_frames(SAMPLE, [40])[0], phrases)
    finally:
        hook.remove()
    passes = detector.pack(phrases)
    assert len(passes) == len(seen) > 30, "several passes"
    assert sorted(i for group in passes for i in group) == list(range(300)), "every phrase in exactly one pass"
    tokenizer = detector.processor.tokenizer
    given: list[str] = []
    for ids in seen:
        assert len(ids) <= detector.max_tokens
        given += [p.strip() for p in tokenizer.decode(ids, skip_special_tokens=True).split(".") if p.strip()]
    assert given == phrases, "the model saw every phrase, whole, once"
    assert hits and all(0 <= h.phrase < 300 for h in hits)
    assert {phrases[h.phrase] for h in hits} <= set(phrases)
    assert len({h.phrase for h in hits}) > len(passes[0]), "labels come from many passes"


def test_per_phrase_thresholds_override_the_defaults(tiny_models: dict[str, str]) -> None:
    image = read_frames(SAMPLE, [40])[0]
    phrases = ["rabbit", "white butterfly", "tree"]
    open_all = GroundingDinoDetector(tiny_models["grounding_dino"], box_threshold=0.0, top_k=20).detect(image, phrases)
    by_phrase = {i: [h for h in open_all if h.phrase == i] for i in range(3)}
    assert all(by_phrase.values()), "threshold 0 keeps boxes for every phrase"
    cut = sorted(h.score for h in by_phrase[0])[len(by_phrase[0]) // 2]
    strict = GroundingDinoDetector(
        tiny_models["grounding_dino"], box_threshold=0.0, top_k=20,
        phrase_thresholds={"rabbit": PhraseThresholds(box=cut), "tree": PhraseThresholds(text=1.01)},
    ).detect(image, phrases)
    assert [h.score for h in strict if h.phrase == 0] == [h.score for h in by_phrase[0] if h.score >= cut]
    assert not [h for h in strict if h.phrase == 2], "a text threshold above 1 removes every tree box"
    assert [h.box for h in strict if h.phrase == 1] == [h.box for h in by_phrase[1]], "others keep the defaults"


@pytest.mark.parametrize("role", ["sam2_video", "sam3_video"])
def test_tracker_session_propagates_boxes_and_masks_both_ways(tiny_models: dict[str, str], role: str) -> None:
    tracker = Sam2VideoTracker(tiny_models[role])
    assert type(tracker.model).__name__ == ("Sam2VideoModel" if role == "sam2_video" else "Sam3TrackerVideoModel")
    frames = read_frames(SAMPLE, list(range(0, 60, 10)))[:, ::4, ::4]  # 6 frames of 180x320
    positions = [10, 11, 12, 13, 14, 15]
    boxes = [[10, 10, 120, 90], [150, 40, 300, 170]]
    calls = []
    tracker.model.vision_encoder.register_forward_hook(lambda *_: calls.append(1))
    session = tracker.open(frames, positions)
    seg = session.segment(13, boxes)
    assert seg.shape == (2, 180, 320) and seg.dtype == bool
    session.add([Prompt(1, 13, box=boxes[0]), Prompt(2, 13, box=boxes[1]), Prompt(7, 13, mask=seg[0])])
    forward = collect(session.propagate(13, objects=[1, 2]))
    assert set(forward) == {1, 2} and forward[1].frames == [13, 14, 15]
    assert forward[1].masks.shape == (3, 180, 320) and all(0 <= s <= 1 for s in forward[2].scores)
    backward = collect(session.propagate(13, reverse=True, objects=[7]))
    assert list(backward) == [7] and backward[7].frames == [13, 12, 11, 10]
    again = collect(session.propagate(13, objects=[1, 2]))
    assert np.array_equal(again[2].masks, forward[2].masks)
    assert len(calls) == len(positions), "each frame's features computed once in the session"
    session.add([Prompt(9, 12, points=[(60.0, 50.0, 1), (250.0, 120.0, 0)])])  # a reviewer's two clicks
    clicked = collect(session.propagate(12, objects=[9]))
    assert clicked[9].frames == [12, 13, 14, 15] and clicked[9].masks.shape == (4, 180, 320)
