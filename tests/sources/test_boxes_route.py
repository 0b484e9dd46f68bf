"""HC-STVG box tubes through the tracker: the boxes prompt the (tiny) SAM2 on the sampled frames, the person
becomes one object, the LLM tags its id with the dataset's caption as context."""

from __future__ import annotations

import re
from pathlib import Path

from annotator import masks
from tests.helpers import export_rows, run_source
from tests.sources.formats import write_hcstvg


def tiny_tracker(tiny_models: dict[str, str]) -> list[str]:
    """--set overrides: the tiny SAM2, short windows, every frame counted as seen (random weights)."""
    return ["--set", f"stages.track.params.model={tiny_models['sam2_video']}", "--set", "stages.track.params.window=8",
            "--set", "stages.track.params.score_threshold=0.0", "--set", "stages.track.params.min_area=0",
            "--set", "stages.track.params.max_lost_frames=4"]


def listed(body: dict) -> list[tuple[str, str]]:
    """(id, name) of the objects a tag request lists."""
    return re.findall(r"^(\d+): (.+)$", body["messages"][0]["content"], re.M)


def test_hcstvg_box_tube_becomes_one_grounded_object(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    annotations, boxes = write_hcstvg(tmp_path / "src", frames=10)

    def tag_all(body: dict) -> str:
        return " and ".join(f"[{name}]({oid})" for oid, name in listed(body)) + " walks to the right."

    result, requests = run_source("hcstvg_boxes.yaml", tmp_path / "run", annotations, tmp_path / "src" / "video",
                                  *tiny_tracker(tiny_models), tagger=tag_all)
    assert result.exit_code == 0, result.output
    prompt = requests[0]["body"]["messages"][0]["content"]
    assert "1: the person" in prompt and "The cat walks to the right and stops." in prompt
    (video,) = export_rows(tmp_path / "run", "videos")
    assert video["frame_indices"] == list(range(2, 10)) and video["keyframe_indices"] == video["frame_indices"]
    assert len(boxes) == len(video["frame_indices"]), "a box prompt on every sampled frame"
    (obj,) = export_rows(tmp_path / "run", "objects")
    (qa,) = export_rows(tmp_path / "run", "qa")
    assert obj["object_id"] == 1 and qa["object_ids"] == [1] and obj["phrase"] == "the person"
    assert f"<p> {obj['phrase']} </p> [SEG]" in qa["answer"]
    assert set(obj["frame_indices"]) <= set(video["frame_indices"]) and obj["mask_rles"]
    for rle in obj["mask_rles"]:
        assert masks.decode(rle, obj["height"], obj["width"]).shape == (obj["height"], obj["width"])


def test_vidstg_trajectories_become_one_object_per_tid(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    from tests.sources.formats import write_vidstg

    annotations = write_vidstg(tmp_path / "src", frames=8)

    def tag_all(body: dict) -> str:
        return "In the clip " + " meets ".join(f"[{name}]({oid})" for oid, name in listed(body)) + "."

    result, requests = run_source("vidstg_boxes.yaml", tmp_path / "run", annotations, tmp_path / "src" / "video",
                                  *tiny_tracker(tiny_models), tagger=tag_all)
    assert result.exit_code == 0, result.output
    prompt = requests[0]["body"]["messages"][0]["content"]
    assert "1: an adult in grey" in prompt and "2: toy rocket" in prompt
    assert "The dataset describes the video as: an adult in grey" in prompt
    objects = export_rows(tmp_path / "run", "objects")
    (qa,) = export_rows(tmp_path / "run", "qa")
    assert [(o["object_id"], o["phrase"], o["phrase_norm"]) for o in objects] == [
        (1, "an adult in grey", "adult in grey"), (2, "toy rocket", "toy rocket")]
    assert qa["object_ids"] == [1, 2] and qa["answer"].count("[SEG]") == 2


def test_anet_entities_keeps_its_grounded_caption(tmp_path: Path, tiny_models: dict[str, str]) -> None:
    from tests.sources.formats import write_anet_entities

    annotations = write_anet_entities(tmp_path / "src")
    result, _ = run_source("anet_entities.yaml", tmp_path / "run", annotations, tmp_path / "src" / "videos",
                           *tiny_tracker(tiny_models))
    assert result.exit_code == 0, result.output
    (video,) = export_rows(tmp_path / "run", "videos")
    assert video["video_id"] == "v_demo_seg0" and video["frame_indices"] == [2, 6, 10, 14, 18, 22, 26, 30, 34, 38]
    assert video["keyframe_indices"] == [2, 14] and video["caption"] == "A cat sits while a rocket flies ."
    (qa,) = export_rows(tmp_path / "run", "qa")
    objects = export_rows(tmp_path / "run", "objects")
    assert [(o["object_id"], o["phrase"], o["phrase_start"], o["phrase_end"]) for o in objects] == [
        (1, "cat", 2, 5), (2, "a rocket", 17, 25)]
    assert qa["answer"] == "A <p> cat </p> [SEG] sits while <p> a rocket </p> [SEG] flies ."
    assert qa["object_ids"] == [1, 2]
