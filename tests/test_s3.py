"""Run directory and inputs on an S3-compatible server (moto's real HTTP endpoint on 127.0.0.1, no mocked client):
the same dataset as on local disk, and a kill -9 mid-run resumes without recomputing finished work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotator import storage
from annotator.rundir import RunDir
from tests.conftest import BUCKET
from tests.helpers import DEMO, SMALL, demo_pipeline, export_rows, kill_then_resume

pytestmark = pytest.mark.slow


def _dataset(run_dir: str) -> tuple[list, list]:
    qa = [(r["video_id"], r["question"], r["answer"], r["object_ids"]) for r in export_rows(run_dir, "qa")]
    objects = [(r["video_id"], r["object_id"], r["phrase"], r["frame_indices"], r["mask_rles"])
               for r in export_rows(run_dir, "objects")]
    return qa, objects


@pytest.fixture(scope="module")
def local_run(clips: dict[str, Path], tiny_models, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("local-run"))
    demo_pipeline().run([clips["a"], clips["b"]], out, executor="local", show_progress=False)
    return out


def test_s3_run_gives_the_same_dataset_as_local_disk(s3, local_run: str, tiny_models) -> None:
    out = f"s3://{BUCKET}/runs/same"
    summary = demo_pipeline().run([f"s3://{BUCKET}/inputs"], out, executor="local", show_progress=False)
    assert (summary.completed, summary.errors) == (2, 0)
    assert _dataset(out) == _dataset(local_run)
    assert len(_dataset(out)[1]) >= 2
    run = RunDir(out)
    assert storage.exists(run.path("manifest.json")) and storage.exists(run.inputs_path)
    assert len(storage.list_files(run.frames_dir("clip_a"), ".jpg")) == 6, "the frame store is on S3 too"
    for entry in run.read_manifest()["stages"]:  # every data shard on S3 is one an index names: no orphans
        stage = entry["stage"]
        shards = {storage.name(f) for f in storage.list_files(run.stage_dir(stage), ".parquet")}
        assert shards == set(run.read_index(stage)["shard"].to_pylist()) - {""}, stage


def _cli(out: str, env: dict[str, str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", f"s3://{BUCKET}/inputs",
            "--output", out, "--executor", "local"]
    for setting in [*SMALL, "stages.detect.batch_size=1", "stages.ingest.batch_size=1", "executor.flush_rows=1"]:
        args += ["--set", setting]
    return subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def test_kill_9_mid_run_on_s3_resumes_to_the_same_dataset(s3, local_run: str, tiny_models) -> None:
    out = f"s3://{BUCKET}/runs/killed"
    kill_then_resume(lambda: _cli(out, s3), out, "detect", pairs=18)  # killed with one video detected
    assert _dataset(out) == _dataset(local_run)
