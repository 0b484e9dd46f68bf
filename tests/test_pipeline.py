"""End to end on CPU with the tiny real models: errors, status, export readers, resume."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from annotator import masks, storage
from annotator.cli import app
from annotator.rundir import RunDir
from tests.helpers import computed, demo_pipeline, export_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(clips: dict[str, Path], tiny_models: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("run")
    summary = demo_pipeline().run([clips["a"].parent], run_dir, executor="local", show_progress=False)
    return run_dir, summary


def test_corrupt_video_is_one_error_row_and_others_complete(finished_run) -> None:
    run_dir, summary = finished_run
    assert (summary.videos, summary.completed, summary.errors) == (3, 2, 1)
    (row,) = RunDir(run_dir).read_errors().to_pylist()
    assert row["video_id"] == "broken" and row["path"].endswith("broken.mp4")
    assert row["stage"] == "ingest" and "broken.mp4" in row["message"] and "corrupt" in row["message"]


def test_status_shows_both_counts(finished_run) -> None:
    run_dir, _ = finished_run
    result = CliRunner().invoke(app, ["status", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "completed: 2" in result.output and "errors: 1" in result.output
    assert "broken" in result.output and "VideoError" in result.output


def test_triplets_ground_every_seg_in_masks_of_frame_size(finished_run) -> None:
    run_dir, summary = finished_run
    qa = export_rows(run_dir, "qa")
    objects = {(o["video_id"], o["object_id"]): o for o in export_rows(run_dir, "objects")}
    videos = {v["video_id"]: v for v in export_rows(run_dir, "videos")}
    assert sorted(videos) == ["clip_a", "clip_b"] and len(qa) == summary.qa >= 1
    for row in qa:
        assert row["answer"].count("[SEG]") == row["answer"].count("<p>") == len(row["object_ids"]) >= 1
        for object_id in row["object_ids"]:
            obj = objects[(row["video_id"], object_id)]
            assert f"<p> {obj['phrase']} </p> [SEG]" in row["answer"]
            decoded = masks.decode_batch(obj["mask_rles"], obj["height"], obj["width"])
            assert decoded.shape == (len(obj["frame_indices"]), 180, 320)
            assert set(obj["frame_indices"]) <= set(videos[row["video_id"]]["frame_indices"])


def test_export_loads_in_hf_datasets_with_identical_masks(finished_run, tmp_path: Path) -> None:
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    run_dir, _ = finished_run
    files = run_dir / "export" / "parquet"
    ds = load_dataset("parquet", data_files=str(files / "objects" / "*.parquet"), split="train",
                      cache_dir=str(tmp_path))
    stored = {}
    for item in RunDir(str(run_dir)).final_items():  # rebuilt from the stage shards (link masks from tracks)
        for obj in item.objects:
            stored[(item.video_id, obj.object_id)] = masks.decode_batch(obj.masks.rles, 180, 320)
    assert len(ds) == len(stored) >= 1
    for row in ds:
        got = masks.decode_batch(row["mask_rles"], row["height"], row["width"])
        assert np.array_equal(got, stored[(row["video_id"], row["object_id"])])
    qa = load_dataset("parquet", data_files=str(files / "qa" / "*.parquet"), split="train", cache_dir=str(tmp_path))
    assert set(qa.column_names) >= {"video_id", "question", "answer", "object_ids"}


def test_rerun_reuses_everything(finished_run, clips: dict[str, Path]) -> None:
    run_dir, _first = finished_run
    before = computed(run_dir)
    qa_before = export_rows(run_dir, "qa")
    again = demo_pipeline().run([clips["a"].parent], run_dir, executor="local", show_progress=False)
    assert again.reused == {"assemble": 2} and again.errors == 1
    assert computed(run_dir) == before, "no finished (video, stage) pair recomputed"
    assert [r["answer"] for r in export_rows(run_dir, "qa")] == [r["answer"] for r in qa_before]


def test_killed_run_resumes_to_the_same_dataset(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    demo_pipeline().run([clips["a"], clips["b"]], tmp_path, executor="local", show_progress=False)
    objects = export_rows(tmp_path, "objects")
    qa = export_rows(tmp_path, "qa")
    run = RunDir(str(tmp_path))
    for stage in ("track", "link", "filter", "review_gate", "assemble"):  # killed tracking clip_b: no index rows
        index = run.read_index(stage)
        storage.remove(run.index_dir(stage))
        keep = index.filter(pc.not_equal(index["video_id"], "clip_b"))
        if keep.num_rows:
            run.write_index(stage, "part-kept-000001.parquet", keep.to_pylist())
    before = computed(tmp_path)
    resumed = demo_pipeline().run([clips["a"], clips["b"]], tmp_path, executor="local", show_progress=False)
    assert resumed.reused == {"assemble": 1, "detect": 1}
    after = computed(tmp_path)
    assert {k for k in after if after[k] != before.get(k)} == {
        ("track", "clip_b"), ("link", "clip_b"), ("filter", "clip_b"), ("review_gate", "clip_b"),
        ("assemble", "clip_b")}, \
        "only the unfinished work is redone"
    assert export_rows(tmp_path, "objects") == objects
    assert [(r["answer"], r["object_ids"]) for r in export_rows(tmp_path, "qa")] == [
        (r["answer"], r["object_ids"]) for r in qa
    ]


def test_changed_params_recompute_from_that_stage(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    demo_pipeline().run([clips["a"]], tmp_path, executor="local", show_progress=False)
    before = computed(tmp_path)
    summary = demo_pipeline("stages.link.params.min_mask_area=1").run(
        [clips["a"]], tmp_path, executor="local", show_progress=False
    )
    assert summary.reused == {"track": 1}
    after = computed(tmp_path)
    assert sorted(stage for stage, _ in after if after[(stage, "clip_a")] != before[(stage, "clip_a")]) == [
        "assemble", "filter", "link", "review_gate"]


def _served(url: str) -> list[str]:
    return ["stages.caption.params.backend=openai", f"stages.caption.params.endpoint={url}",
            "stages.caption.params.model=served-vlm", "stages.caption.params.backoff_s=0.01",
            "stages.caption.params.max_retries=2"]


def test_served_captioner_retries_are_counted_in_the_manifest(clips, tiny_models, tmp_path: Path) -> None:
    import json

    from annotator.testing.fake_server import FakeServer, Fault

    # three failures spread over two videos; 3 retries each, so whichever video gets them, both succeed. The
    # scripted slow answer (8 s) is far past the client's 3 s timeout, which no healthy reply comes near
    with FakeServer([429, 503, Fault("slow")], content="a rabbit near a tree and a flower", slow_s=8.0) as server:
        settings = [*_served(server.url), "stages.caption.params.max_retries=3", "stages.caption.params.timeout_s=3"]
        summary = demo_pipeline(*settings).run([clips["a"], clips["b"]], tmp_path, executor="local",
                                               show_progress=False)
    assert (summary.completed, summary.errors) == (2, 0)
    counters = json.loads((tmp_path / "manifest.json").read_text())["counters"]
    tracks = sum(len(it.tracks) for it in RunDir(str(tmp_path)).final_items())
    assert counters.pop("track.masklets") == tracks > 0  # what GPU-seconds per masklet divide by
    assert counters.pop("review_gate.released_by_policy") == 2  # the demo's gate (`none`) lets both through
    assert counters == {"caption.http_429": 1, "caption.http_503": 1, "caption.timeouts": 1,
                        "caption.requests": 5, "caption.retries": 3, f"caption.requests@{server.url}": 5,
                        f"caption.faults@{server.url}": 1,  # the 503 (a 429 is busy, a timeout slow: not down)
                        "caption.output_tokens": 2 * 8}  # the fake server's usage: words of the caption
    assert {r["caption"] for r in export_rows(tmp_path, "videos")} == {"a rabbit near a tree and a flower"}


def test_endpoint_that_stays_down_ends_as_errors_and_the_run_finishes(clips, tiny_models, tmp_path: Path) -> None:
    from annotator.testing.fake_server import FakeServer

    with FakeServer([503] * 20) as server:
        summary = demo_pipeline(*_served(server.url)).run([clips["a"], clips["b"]], tmp_path, executor="local",
                                                           show_progress=False)
    assert (summary.completed, summary.errors) == (0, 2)
    rows = RunDir(tmp_path).read_errors().to_pylist()
    assert {(r["stage"], r["error_type"]) for r in rows} == {("caption", "EndpointError")}
    assert all("gave up after 3 attempts (last: HTTP 503)" in r["message"] for r in rows)


def test_changed_prompt_text_recomputes_captions(clips, tiny_models, tmp_path: Path) -> None:
    prompt = tmp_path / "caption.v1.md"
    prompt.write_text("describe the video .")
    run_dir = tmp_path / "run"
    demo_pipeline(f"stages.caption.params.prompt={prompt}").run([clips["a"]], run_dir, executor="local",
                                                                 show_progress=False)
    before = computed(run_dir)
    prompt.write_text("describe the video in detail .")
    summary = demo_pipeline(f"stages.caption.params.prompt={prompt}").run([clips["a"]], run_dir, executor="local",
                                                                           show_progress=False)
    assert summary.reused == {"ingest": 1}
    after = computed(run_dir)
    assert sorted(stage for stage, _ in after if after[(stage, "clip_a")] != before[(stage, "clip_a")]) == [
        "assemble", "caption", "detect", "filter", "link", "phrases", "review_gate", "track"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stage_inputs"]["caption"] == {"prompt": {"name": "caption", "version": 1, "sha256": hashlib.sha256(
        b"describe the video in detail .").hexdigest()}}
    assert manifest["stage_inputs"]["assemble"]["questions"]["name"] == "gcg_questions"
