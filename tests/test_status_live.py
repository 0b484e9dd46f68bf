"""`annotator status` reads a run while it is going (another process), from the stage indexes alone. The run is
held at a known point, not caught in passing: its served captioner's answers wait until the test releases them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DEMO, SMALL

pytestmark = pytest.mark.slow


def _status(run_dir: Path) -> tuple[str, dict[str, tuple[int, int]]]:
    out = subprocess.run([sys.executable, "-m", "annotator.cli", "status", str(run_dir)], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120)
    rows = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^\s*(\w+)\s+(\d+)\s+(\d+)\s+\d+", out.stdout, re.M)}
    return out.stdout, rows


def test_status_of_a_running_run_shows_partial_counts(clips: dict[str, Path], tiny_models, tmp_path: Path) -> None:
    from annotator.testing.fake_server import FakeServer, Fault

    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", str(clips["a"]), "--input",
            str(clips["b"]), "--output", str(run_dir), "--executor", "local"]
    with FakeServer([Fault("hold"), Fault("hold")], content="a rabbit near a tree and a flower") as server:
        served = ["stages.caption.params.backend=openai", f"stages.caption.params.endpoint={server.url}",
                  "stages.caption.params.model=served-vlm"]
        for setting in [*SMALL, "stages.track.batch_size=1", "executor.flush_rows=1", *served]:
            args += ["--set", setting]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 300
            while not server.requests:  # the captioner asked, and waits: the run stands still here
                assert proc.poll() is None, f"the run ended before it asked the captioner: {proc.communicate()[0]}"
                assert time.monotonic() < deadline, "the captioner was never asked within 300 s"
                time.sleep(0.1)
            text, rows = _status(run_dir)
            server.release()
            output, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, output
    assert "running or interrupted" in text and "0/2 videos finished" in text, text
    assert list(rows) == ["ingest", "caption", "phrases", "detect", "track", "link", "filter", "review_gate",
                          "assemble"]
    assert rows["ingest"] == (2, 0) and all(rows[s] == (0, 0) for s in list(rows)[1:]), rows
    text, rows = _status(run_dir)
    assert "finished" in text and "2/2 videos finished" in text
    assert all(done == 2 and errors == 0 for done, errors in rows.values())


def test_status_lists_the_errors_in_force_also_after_an_interrupt(clips: dict[str, Path], tmp_path: Path) -> None:
    """errors.parquet is written when a run finishes; a run stopped midway has its errors in the indexes only,
    and an errors.parquet row for a video that has finished since is no longer an error."""
    import json
    import shutil

    import yaml

    from annotator.rundir import RunDir
    from tests.fake_flow import flow_specs

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("v0", "v1", "v2"):
        shutil.copy(clips["a"], folder / f"{name}.mp4")
    stages = [*flow_specs(frames=2), {"stage": "fake-fails", "params": {"fail": ["v1"]}},
              {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    pipeline = tmp_path / "fails.yaml"
    pipeline.write_text(yaml.safe_dump({"name": "fails", "executor": {"kind": "local"}, "stages": stages}))
    run_dir = tmp_path / "run"
    subprocess.run([sys.executable, "-c", "import tests.fake_flow, sys; from annotator.cli import app; "
                    "sys.argv = ['annotator', 'run', sys.argv[1], '--input', sys.argv[2], '--output', sys.argv[3]]; "
                    "app()", str(pipeline), str(folder), str(run_dir)], check=True, capture_output=True, timeout=300)
    run = RunDir(str(run_dir))
    manifest = run.read_manifest()
    # as a run killed before it finished leaves it: no errors.parquet of its own, one from an earlier run that
    # names v0 (finished since) and v2 (lost with a worker, not finished)
    run.write_errors([{"video_id": v, "path": str(folder / f"{v}.mp4"), "stage": "fake-track",
                       "error_type": "RayActorError", "message": "worker lost: the node died"} for v in ("v0", "v2")])
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "finished": None}))
    for stage in ("assemble",):  # v2 is not finished in this run
        rows = [r for r in run.read_index(stage).to_pylist() if r["video_id"] != "v2"]
        for f in (run_dir / "stages" / stage / "index").glob("*.parquet"):
            f.unlink()
        run.write_index(stage, "part-x-000001.parquet", rows)
    out, _ = _status(run_dir)
    errors = [line.split()[0] for line in out.splitlines() if "(" in line and " at " in line]
    assert errors == ["v1", "v2"], out
    assert "ValueError: cannot read v1" in out and "fake-fails" in out
