"""`annotator status` on a run with many bad inputs names the first errors and skipped paths and counts the rest,
so its output stays a screen, not a line per failed video; each is one line, its path as it is (brackets too)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from typer.testing import CliRunner

from annotator.cli import app
from annotator.config import PipelineConfig
from annotator.pipeline import Pipeline
from annotator.status import LISTED as STATUS_LISTED
from tests.fake_flow import flow_specs

VIDEOS, FAILING, STRAY = 26, 24, 23


def test_status_names_the_first_errors_and_skipped_inputs_and_counts_the_rest(clips: dict[str, Path],
                                                                            tmp_path: Path) -> None:
    inputs = tmp_path / "in [red] [" / "b]"  # markup to Rich: it ate "[red]", and "[/b]" raised MarkupError
    inputs.mkdir(parents=True)
    names = [f"v{i:02d}" for i in range(VIDEOS)]
    for name in names:
        shutil.copy(clips["a"], inputs / f"{name}.mp4")
    for i in range(STRAY):  # images beside videos: skipped, each with its reason
        (inputs / f"cover{i:02d}.jpg").write_bytes(b"not looked at")
    stages = flow_specs(frames=2)
    stages.insert(1, {"stage": "fake-fails", "params": {"fail": names[:FAILING]}})
    stages.append({"stage": "assemble", "params": {"questions": ["What happens?"]}})
    run = Pipeline(PipelineConfig.model_validate({"name": "many-bad", "stages": stages}))
    summary = run.run([inputs], tmp_path / "run", executor="local", show_progress=False)
    assert (summary.videos, summary.completed, summary.errors) == (VIDEOS, VIDEOS - FAILING, FAILING)

    result = CliRunner().invoke(app, ["status", str(tmp_path / "run")])  # piped: 80 columns
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"  v00 ({inputs / 'v00.mp4'}) at fake-fails: " in text  # whole, not folded at 80
    assert f"  {inputs / 'cover00.jpg'}: " in text
    assert re.findall(r"cannot read (v\d\d)", text) == names[:STATUS_LISTED]  # the first ones, in id order
    assert f"… and {FAILING - STATUS_LISTED} more errors" in text
    assert f"{STRAY} inputs skipped:" in text
    assert re.findall(r"cover(\d\d)\.jpg", text) == [f"{i:02d}" for i in range(STATUS_LISTED)]
    assert f"… and {STRAY - STATUS_LISTED} more" in text


def test_status_figures_stay_whole_at_80_columns_with_a_million_videos_and_long_stage_names() -> None:
    import io

    from rich.console import Console

    from annotator.cli import print_whole, stage_rows

    rows = [{"stage": name, "done": 1_000_000, "errors": 123_456, "filtered": 2_000_000, "pending": 999_999,
             "busy": 1_234_567.8, "model": 1_200_000.1, "nodes": 128, "rate": 1234.56}
            for name in ("grounding-dino-detect", "fake-ingest")]
    out = Console(file=io.StringIO(), width=80, color_system=None)
    print_whole(out, stage_rows(rows))
    lines = out.file.getvalue().splitlines()
    assert "…" not in "".join(lines)  # before: "1000…" for done, "video…" for the header
    assert lines[1].split() == ["stage", "done", "errors", "filtered", "pending", "busy", "s", "model", "s", "nodes",
                                "videos/s"]
    figures = ["1000000", "123456", "2000000", "999999", "1234567.8", "1200000.1", "128", "1234.56"]
    assert [line.split() for line in lines[3:5]] == [["grounding-dino-detect", *figures], ["fake-ingest", *figures]]
    assert out.width == 80  # the console is as it was
    small = Console(file=io.StringIO(), width=80, color_system=None)
    print_whole(small, stage_rows([{"stage": "fake-ingest", "done": 3, "errors": 1, "filtered": 0, "pending": 0,
                                    "busy": 12.5, "model": 10.2, "nodes": 1, "rate": 0.25}]))
    assert max(len(line) for line in small.file.getvalue().splitlines()) <= 80  # demo sizes fit as before
