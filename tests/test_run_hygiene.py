"""A run directory belongs to one input set; parameters out of range and an --output that is a file fail at config
time with one line and exit status 2."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import ConfigError
from annotator.rundir import RunDir
from tests.helpers import DEMO, demo_pipeline, export_rows

pytestmark = pytest.mark.slow


def test_another_input_set_is_refused_unless_forced(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    demo_pipeline().run([clips["a"]], run_dir, executor="local", show_progress=False)
    with pytest.raises(ConfigError, match="--force-new-inputs"):
        demo_pipeline().run([clips["a"], clips["b"]], run_dir, executor="local", show_progress=False)
    assert [r["video_id"] for r in export_rows(run_dir, "videos")] == ["clip_a"], "refused before any change"
    summary = demo_pipeline().run([clips["b"]], run_dir, executor="local", show_progress=False,
                                  force_new_inputs=True)
    assert (summary.videos, summary.completed) == (1, 1)
    assert [r["video_id"] for r in export_rows(run_dir, "videos")] == ["clip_b"], "export follows the input set"
    assert sorted(RunDir(str(run_dir)).finished_videos()) == ["clip_b"]
    result = CliRunner().invoke(app, ["status", str(run_dir)], terminal_width=200)
    assert "1/1 videos finished" in result.output


def test_adding_a_file_never_renames_a_finished_video(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    folder, run_dir = tmp_path / "videos", tmp_path / "run"
    folder.mkdir()
    shutil.copy(clips["a"], folder / "a b.mp4")
    demo_pipeline().run([folder], run_dir, executor="local", show_progress=False)
    before = {(r["stage"], r["video_id"]): (r["shard"], r["finished"])
              for stage in ("ingest", "caption", "track", "assemble")
              for r in RunDir(str(run_dir)).read_index(stage).to_pylist()}
    (existing,) = {vid for _, vid in before}
    assert existing.startswith("a_b-"), "a name that had to change carries its path's hash"
    shutil.copy(clips["b"], folder / "a_b.mp4")
    summary = demo_pipeline().run([folder], run_dir, executor="local", show_progress=False, force_new_inputs=True)
    assert (summary.videos, summary.completed) == (2, 2)
    assert sorted(r["video_id"] for r in export_rows(run_dir, "videos")) == ["a_b", existing], "no id changed"
    after = {(r["stage"], r["video_id"]): (r["shard"], r["finished"])
             for stage in ("ingest", "caption", "track", "assemble")
             for r in RunDir(str(run_dir)).read_index(stage).to_pylist()}
    assert {k: v for k, v in after.items() if k[1] == existing} == before, "nothing finished ran again"
    assert summary.reused == {"assemble": 1}


def test_a_run_directory_keeps_the_id_rule_it_was_made_with(tmp_path: Path) -> None:
    from annotator.pipeline import Pipeline

    run = RunDir(str(tmp_path / "run"))
    assert Pipeline.id_rule(run) == 2, "a new run directory takes today's rule"
    run.write_manifest({"inputs": {"count": 1, "sha256": "x", "history": []}})
    assert Pipeline.id_rule(run) == 1, "made before rules were recorded: ids collide-and-hash, as they were made"
    run.write_manifest({"inputs": {"count": 1, "sha256": "x", "history": [], "id_rule": 2}})
    assert Pipeline.id_rule(run) == 2


@pytest.mark.parametrize(("setting", "message"), [
    ("stages.ingest.params.max_frames=-5", "stages.ingest.params.max_frames: Input should be greater than or equal"),
    ("stages.ingest.params.target_fps=0", "stages.ingest.params.target_fps: Input should be greater than 0"),
    ("stages.detect.params.box_threshold=1.5", "stages.detect.params.box_threshold: Input should be less than"),
    ("stages.caption.params.num_frames=0", "stages.caption.params.num_frames: Input should be greater than or equal"),
    ("stages.track.params.window=1", "stages.track.params.window: Input should be greater than or equal to 2"),
    ("stages.link.params.min_mask_area=-1", "stages.link.params.min_mask_area: Input should be greater than or"),
])
def test_parameters_out_of_range_fail_at_config_time(setting: str, message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(DEMO), "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                                      "--set", setting], terminal_width=300)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_output_that_is_a_file_fails_with_one_line(clips: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "taken.txt"
    target.write_text("x")
    result = CliRunner().invoke(app, ["run", str(DEMO), "--input", str(clips["a"]), "--output", str(target)],
                                terminal_width=300)
    assert result.exit_code == 2 and "is a file" in result.output and target.read_text() == "x"


def test_the_cli_lists_its_inputs_once(clips: dict[str, Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI checks the inputs before it starts and the run uses that listing: an object-store prefix is walked
    once, not twice."""
    import yaml

    import annotator.pipeline
    from tests.fake_flow import flow_specs

    walks: list[list] = []
    discover = annotator.pipeline.discover_table

    def counted(*args: Any, **kwargs: Any) -> Any:
        walks.append(list(args[0]))
        return discover(*args, **kwargs)

    monkeypatch.setattr(annotator.pipeline, "discover_table", counted)
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("one", "two"):
        shutil.copy(clips["a"], folder / f"{name}.mp4")
    pipeline = tmp_path / "fake.yaml"
    pipeline.write_text(yaml.safe_dump({"name": "fake", "executor": {"kind": "local"}, "stages": [
        *flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]}))
    result = CliRunner().invoke(app, ["run", str(pipeline), "--input", str(folder), "--output",
                                      str(tmp_path / "run")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2/2 videos done" in result.output
    assert walks == [[str(folder)]]


def test_a_resumed_run_compacts_what_a_killed_one_left_before_reading_it(clips: dict[str, Path], tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from annotator import storage
    from annotator.config import PipelineConfig
    from annotator.pipeline import Pipeline
    from tests.fake_flow import flow_specs

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("one", "two", "three"):
        shutil.copy(clips["a"], folder / f"{name}.mp4")
    specs = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    config = PipelineConfig.model_validate({"name": "fake", "stages": [{**s, "batch_size": 1} for s in specs]})
    run = RunDir(str(tmp_path / "run"))
    Pipeline(config).run([folder], run.root, executor="local", show_progress=False)
    stages = [s["stage"] for s in specs]
    for stage in stages:  # what a kill leaves: the rows of the last batches in parts of their own, one superseded
        rows = run.read_index(stage).to_pylist()
        run.write_index(stage, "part-killed-000001.parquet", [{**rows[0], "finished": rows[0]["finished"] + 1}])
        run.write_index(stage, "part-killed-000002.parquet", rows[1:2])
    seen = {}
    work = Pipeline.work

    def spy(self: Pipeline, rundir: RunDir, inputs: list) -> tuple:
        seen.update({s: len(storage.list_files(rundir.index_dir(s), ".parquet")) for s in stages})
        seen.update({f"{s}.rows": rundir.read_index(s).num_rows for s in stages})
        return work(self, rundir, inputs)

    monkeypatch.setattr(Pipeline, "work", spy)
    summary = Pipeline(config).run([folder], run.root, executor="local", show_progress=False)
    assert (summary.completed, summary.reused) == (3, {"assemble": 3}), "nothing ran again"
    assert all(seen[s] == 1 for s in stages), seen  # one file per stage before resume read it
    assert all(seen[f"{s}.rows"] == 3 for s in stages), seen  # one row per video: the superseded ones went


def test_index_parts_are_compacted_while_the_run_goes_on(ray_cluster, clips: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from annotator import storage
    from annotator.config import PipelineConfig
    from annotator.pipeline import Pipeline
    from tests.fake_flow import flow_specs

    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(6):
        shutil.copy(clips["a"], folder / f"v{i}.mp4")
    specs = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    config = PipelineConfig.model_validate({"name": "fake", "executor": {"flush_rows": 1},  # a part per video
                                            "stages": [{**s, "batch_size": 1} for s in specs]})
    run = RunDir(str(tmp_path / "run"))
    monkeypatch.setattr(Pipeline, "compact_every_videos", 2)
    seen: list[list[str]] = []

    def files(row: dict) -> None:
        seen.append(sorted(storage.name(f) for f in storage.list_files(run.index_dir("assemble"), ".parquet")))

    summary = Pipeline(config).run([folder], run.root, executor="ray", show_progress=False, on_status=files)
    assert summary.completed == 6
    # every second video, the parts written since the last compaction (two or more) became one file
    assert any(name.startswith("compacted-") for name in seen[1]), seen
    assert sum(name.startswith("part-") for name in seen[-1]) <= 1, seen  # not a part per video
    assert sorted(run.read_index("assemble")["video_id"].to_pylist()) == [f"v{i}" for i in range(6)]


def test_the_input_digest_is_the_one_earlier_run_directories_recorded() -> None:
    """The digest is hashed from Arrow a slice at a time now; a run directory made before must still match its
    own inputs (else resuming it would ask for --force-new-inputs)."""
    import hashlib

    from annotator.pipeline import found_table, input_digest

    pairs = [(f"v{i}_{'é' * (i % 3)}", f"/data/ü{i % 7}/clip {i * 37 % 1000}.mp4") for i in range(23_456)]
    pairs += [("a", "/a"), ("a_b", "/ab"), ("ab", "/a b"), ("a-b", "/a-b")]
    before = hashlib.sha256("\n".join(sorted(f"{v}\t{p}" for v, p in pairs)).encode()).hexdigest()[:16]
    assert input_digest(found_table(pairs)) == before
    assert input_digest(found_table(pairs[:-1])) != before
