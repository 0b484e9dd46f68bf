"""The review gate in whole runs: queue order by doubt, `below` lets the rest through (recorded in the gate's
own index rows), decided items are released on the next run, and a later decision on a finished item redoes only
what follows."""

from __future__ import annotations

import shutil
from pathlib import Path

from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from annotator.review.items import ReviewRun
from annotator.review.store import Decision, DecisionStore
from annotator.rundir import RunDir
from tests.fake_flow import flow_specs
from tests.helpers import computed, export_rows

SCORES = {"v1": 0.3, "v2": 0.1, "v3": 0.8, "v4": 0.45, "v5": 0.95}


def gated(policy: object) -> Pipeline:
    return Pipeline(PipelineConfig.model_validate({"name": "gated", "stages": [
        *flow_specs(frames=4), {"stage": "fake-scores", "params": {"scores": SCORES}},
        {"stage": "review_gate", "params": {"policy": policy}}, {"stage": "assemble"}]}))


def inputs(clips: dict[str, Path], root: Path) -> Path:
    folder = root / "in"
    folder.mkdir()
    for name in SCORES:
        shutil.copy(clips["a"], folder / f"{name}.mp4")
    return folder


def test_queue_is_ordered_by_doubt_and_below_lets_the_rest_through(clips: dict[str, Path], tmp_path: Path) -> None:
    folder, run_dir = inputs(clips, tmp_path), tmp_path / "run"
    summary = gated({"below": {"score": 0.5}}).run([folder], run_dir, executor="local", show_progress=False)
    assert (summary.completed, summary.pending) == (2, 3)
    queue = ReviewRun(str(run_dir)).queue()
    assert [(q["video_id"], q["priority"]) for q in queue] == [("v2", 0.1), ("v1", 0.3), ("v4", 0.45)]
    gate = RunDir(str(run_dir)).latest("review_gate")
    assert {vid for vid, row in gate.items() if dict(row["counters"]).get("review_gate.released_by_policy")} == {
        "v3", "v5"}, "the gate's output records what its policy let through"
    store = DecisionStore(str(run_dir))
    assert store.history() == [], "the gate never writes decisions: people's decisions only"
    assert {r["video_id"] for r in export_rows(run_dir, "videos")} == {"v3", "v5"}
    assert {r["status"] for r in RunDir(str(run_dir)).latest("review_gate").values()} == {"ok", "pending"}

    store.append(Decision("v2", "accept", "ann"))
    store.append(Decision("v1", "reject", "ann", reason="blurry"))
    again = gated({"below": {"score": 0.5}}).run([folder], run_dir, executor="local", show_progress=False)
    assert (again.completed, again.filtered, again.pending) == (3, 1, 1)
    rows = RunDir(str(run_dir)).latest("review_gate")
    assert (rows["v1"]["status"], rows["v1"]["reason"]) == ("filtered", "rejected by ann: blurry")
    assert {o["provenance"] for o in export_rows(run_dir, "objects") if o["video_id"] == "v2"} == {"reviewed"}
    assert {o["provenance"] for o in export_rows(run_dir, "objects") if o["video_id"] == "v3"} == {"machine"}
    assert [q["video_id"] for q in ReviewRun(str(run_dir)).queue()] == ["v4"]

    before = computed(run_dir)
    store.append(Decision("v3", "drop", "bob", object=1, reason="not a rabbit"))
    gated({"below": {"score": 0.5}}).run([folder], run_dir, executor="local", show_progress=False)
    after = computed(run_dir)
    assert sorted(k for k in after if after[k] != before.get(k)) == [("assemble", "v3"), ("review_gate", "v3")]
    v3 = [o for o in export_rows(run_dir, "objects") if o["video_id"] == "v3"]
    assert sorted(o["object_id"] for o in v3) == [2, 3]
    (qa,) = [q for q in export_rows(run_dir, "qa") if q["video_id"] == "v3"]
    assert "<p> rabbit </p>" not in qa["answer"] and " rabbit " in qa["answer"] and qa["object_ids"] == [2, 3]


def test_sample_policy_draws_per_video_with_its_seed(clips: dict[str, Path], tmp_path: Path) -> None:
    folder = inputs(clips, tmp_path)
    first = gated({"sample": 0.5}).run([folder], tmp_path / "a", executor="local", show_progress=False)
    second = gated({"sample": 0.5}).run([folder], tmp_path / "b", executor="local", show_progress=False)
    pending = [{v for v, r in RunDir(str(tmp_path / d)).latest("review_gate").items() if r["status"] == "pending"}
               for d in ("a", "b")]
    assert pending[0] == pending[1] and 0 < first.pending == second.pending < 5
    assert gated("all").run([folder], tmp_path / "c", executor="local", show_progress=False).pending == 5


def test_run_ends_with_exit_3_naming_the_review_command(clips: dict[str, Path], tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from annotator.cli import app

    folder = inputs(clips, tmp_path)
    config = tmp_path / "gated.yaml"
    config.write_text(yaml.safe_dump({"name": "gated", "stages": [
        *flow_specs(frames=3), {"stage": "fake-scores", "params": {"scores": SCORES}},
        {"stage": "review_gate", "params": {"policy": {"below": {"score": 0.5}}}}, {"stage": "assemble"}]}))
    args = ["run", str(config), "-i", str(folder), "-o", str(tmp_path / "run"), "--executor", "local"]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 3, result.output
    assert f"3 items awaiting review: annotator review {tmp_path / 'run'}" in result.output
    status = CliRunner().invoke(app, ["status", str(tmp_path / "run")], terminal_width=300)
    assert status.exit_code == 0 and "pending review: 3" in status.output, status.output
