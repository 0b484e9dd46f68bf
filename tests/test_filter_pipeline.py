"""The filter stage inside a whole run: one object dropped (its `[SEG]` and markup gone, its words kept), one
item filtered, and the report's "Filter and drop reasons" section naming both."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from annotator import masks
from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from annotator.records import VideoItem
from annotator.report.render import write_report
from annotator.testing import fake_stages as fakes
from tests.fake_flow import FLOW, flow_specs
from tests.helpers import export_rows

SHORT, LONG = "short", "a_much_longer_video_name"


def area_fractions(video_id: str) -> list[float]:
    """Mean visible mask area of each object the fakes give this video (their shapes are seeded by the id)."""
    item = VideoItem(video_id, f"/{video_id}.mp4")
    for stage in FLOW:
        (item,) = stage.process([item])
    h, w = item.info.height, item.info.width
    out = []
    for obj in item.objects:
        areas = masks.decode_batch(obj.masks.rles, h, w).reshape(len(obj.masks.rles), -1).sum(axis=1)
        out.append(float(areas[areas > 0].mean()) / (h * w))
    return out


class Section(HTMLParser):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key, self.inside, self.text = key, False, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = dict(attrs).get("id") == self.key

    def handle_data(self, data: str) -> None:
        if self.inside and data.strip():
            self.text.append(data.strip())


def test_an_object_and_an_item_filtered_in_a_run_and_named_in_the_report(clips: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in (SHORT, LONG):
        shutil.copy(clips["a"], inputs / f"{name}.mp4")
    areas = area_fractions(SHORT)
    smallest = int(np.argmin(areas))
    threshold = (sorted(areas)[0] + sorted(areas)[1]) / 2
    caption_chars = {v: len(f"a rabbit sits under a tree while a butterfly flies by ({v})") for v in (SHORT, LONG)}
    stages = [*flow_specs(), {"stage": "filter", "params": {"min_area_fraction": round(threshold, 6),
                                              "max_caption_chars": caption_chars[SHORT] + 2}},
               {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    run = Pipeline(PipelineConfig.model_validate({"name": "filters", "stages": stages}))
    summary = run.run([inputs], tmp_path / "run", executor="local", show_progress=False)
    assert (summary.videos, summary.completed, summary.filtered, summary.errors) == (2, 1, 1, 0)

    (qa,) = export_rows(tmp_path / "run", "qa")
    assert qa["video_id"] == SHORT
    dropped_word = fakes.WORDS[smallest]
    kept = [w for i, w in enumerate(fakes.WORDS) if i != smallest]
    assert qa["answer"].count("[SEG]") == qa["answer"].count("<p>") == len(qa["object_ids"]) == 2
    assert f"<p> {dropped_word} </p>" not in qa["answer"] and f" {dropped_word} " in f" {qa['answer']} "
    assert all(f"<p> {w} </p> [SEG]" in qa["answer"] for w in kept)
    assert {o["phrase"] for o in export_rows(tmp_path / "run", "objects")} == set(kept)

    report = Section("drop-reasons")
    report.feed(Path(write_report(tmp_path / "run")).read_text())
    text = " | ".join(report.text)
    assert "object: min_area_fraction | 1" in text
    assert f"{SHORT} object {smallest + 1} ({dropped_word}): mask area" in text
    assert f"< min_area_fraction {round(threshold, 6)}" in text
    assert (f"{LONG} ({inputs / LONG}.mp4) filter: caption of {caption_chars[LONG]} characters > "
            f"max_caption_chars {caption_chars[SHORT] + 2}") in text
