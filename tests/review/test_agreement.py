"""Machine vs review on a real review session: people accept, reject and rename through the review server and
draw one mask in CVAT; `evaluate --review` and the report's section show exactly those counts, and the fixed
mask's IoU is the one computed here from the pixels."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from annotator.config import PipelineConfig
from annotator.export.cvat import cvat_rle
from annotator.pipeline import Pipeline
from annotator.review.items import ReviewRun
from tests.fake_flow import flow_specs
from tests.review.conftest import Serve

SCORES = {"v1": 0.9, "v2": 0.8, "v3": 0.3, "v4": 0.5, "v5": 0.2, "v6": 0.7}


def run_pipeline(inputs: Path, run_dir: Path) -> None:
    config = PipelineConfig.model_validate({"name": "agreement", "stages": [
        *flow_specs(frames=3), {"stage": "fake-scores", "params": {"scores": SCORES}},
        {"stage": "review_gate", "params": {"policy": "all"}}, {"stage": "assemble"}]})
    Pipeline(config).run([inputs], run_dir, executor="local", show_progress=False)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=300)
    assert result.exit_code == 0, result.output
    return result.output


def track_iou(before: np.ndarray, after: np.ndarray) -> float:
    return float((before & after).sum() / (before | after).sum())


class SectionText(HTMLParser):
    """The text of one report section, cells separated by '|'."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section, self.inside, self.depth, self.parts = section, False, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = dict(attrs).get("id") == self.section
        if self.inside and tag in ("td", "th", "p", "h3"):
            self.parts.append("|")

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def section_text(page: str, section: str) -> str:
    parser = SectionText(section)
    parser.feed(page)
    return re.sub(r"\s+", " ", "".join(parser.parts))


def test_machine_vs_review_counts_what_people_did(clips: dict[str, Path], tmp_path: Path, serve: Serve) -> None:
    (tmp_path / "in").mkdir()
    for vid in SCORES:
        shutil.copy(clips["a"], tmp_path / "in" / f"{vid}.mp4")
    run = tmp_path / "run"
    run_pipeline(tmp_path / "in", run)
    machine = {vid: ReviewRun(str(run)).base(vid) for vid in SCORES}

    _, url = serve(run)
    with httpx.Client(base_url=url, timeout=60) as http:
        def decide(vid: str, **body: object) -> None:
            response = http.post(f"/api/items/{vid}/decisions", json={"reviewer": "ann", **body})
            assert response.status_code == 200, response.text

        decide("v1", action="accept")
        decide("v2", action="accept")
        decide("v3", action="reject", reason="blurry")
        decide("v4", action="rename", object=1, payload={"text": "a fluffy rabbit"})
        decide("v4", action="accept")

        cli("export", str(run), "--format", "cvat", "--out", str(tmp_path / "cvat"))
        path = tmp_path / "cvat" / "v5" / "annotations.xml"
        tree = ET.parse(path)
        (track,) = [t for t in tree.getroot().iter("track") if t.attrib["id"] == "1"]
        info = machine["v5"].info
        assert info is not None
        drawn = np.zeros((info.height, info.width), bool)
        drawn[10:40, 20:70] = True
        first = next(m for m in track.iter("mask") if m.attrib["frame"] == str(info.frame_indices[0]))
        rle, left, top, width, height = cvat_rle(drawn) or ("", 0, 0, 0, 0)
        first.attrib.update(rle=rle, left=str(left), top=str(top), width=str(width), height=str(height))
        tree.write(path)
        assert "fix_mask: 1" in cli("review", "import", str(run), str(path), "--reviewer", "bob")
        decide("v5", action="accept")

    (obj,) = [o for o in machine["v5"].objects if o.object_id == 1]
    before = masks.decode_batch(obj.masks.rles, info.height, info.width)
    after = before.copy()
    after[obj.masks.frames.index(0)] = drawn
    expected_iou = track_iou(before, after)
    expected_first = track_iou(before[0], drawn)
    accepted = [machine[v] for v in ("v1", "v2", "v4", "v5")]
    total = sum(len(it.objects) for it in accepted)

    def check(figures: dict) -> None:
        assert (figures["reviewed"], figures["accepted_as_is"], figures["edited"], figures["rejected"]) == (5, 2, 2, 1)
        assert figures["reject_reasons"] == {"blurry": 1}
        assert figures["objects"] == {"total": total, "kept": total - 2, "renamed": 1, "dropped": 0, "merged": 0,
                                      "fixed": 1}
        (fixed,) = figures["fixed_masks"]
        assert (fixed["video_id"], fixed["object_id"]) == ("v5", 1)
        assert fixed["track_iou"] == pytest.approx(expected_iou, abs=1e-6)
        assert fixed["frame_ious"]["0"] == pytest.approx(expected_first, abs=1e-6)
        assert all(v == 1.0 for k, v in fixed["frame_ious"].items() if k != "0"), "untouched frames agree"
        priority = figures["thresholds"]["review_priority"]
        assert (priority["reviewed"], priority["corrected"], priority["highest_corrected_score"],
                priority["would_send"]) == (5, 3, 0.5, 0.6), "v3, v4, v5 corrected; a gate below 0.5+ sends 3 of 5"
        track = figures["thresholds"]["track"]
        low = len(machine["v4"].objects) + len(machine["v5"].objects)
        assert (track["reviewed"], track["corrected"], track["highest_corrected_score"]) == (total, 2, 0.5)
        assert track["would_send"] == pytest.approx(low / total, abs=1e-6)
        rates = {b["priority"]: (b["reviewed"], b["accepted_as_is"]) for b in figures["buckets"]}
        assert rates == {"0.0-0.2": (0, 0), "0.2-0.4": (2, 0), "0.4-0.6": (1, 0), "0.6-0.8": (0, 0),
                         "0.8-1.0": (2, 2)}, "corrections cluster at low priority"

    figures = json.loads(cli("evaluate", "--review", str(run)).strip().splitlines()[-1])
    check(figures)
    cli("report", str(run))
    text = section_text((run / "report.html").read_text(), "machine-vs-review")
    assert "|items reviewed|5|accepted as is|2 (40%)|edited|2 (40%)|rejected|1 (20%)" in text, text
    assert "|blurry|1" in text and f"|fixed|1 ({100 / total:.0f}%)" in text
    assert f"|v5|1|{expected_iou:.4f}|" in text

    run_pipeline(tmp_path / "in", run)  # releases the decided items: the machine's side is rebuilt, same figures
    check(json.loads(cli("evaluate", "--review", str(run)).strip().splitlines()[-1]))


def test_evaluate_review_of_a_run_without_a_gate_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--review", str(tmp_path / "nothing")], terminal_width=300)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
