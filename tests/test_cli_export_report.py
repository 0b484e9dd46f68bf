"""`annotator export` and `annotator report` on a real (tiny-model) run."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.report.render import SECTIONS
from annotator.rundir import RunDir
from tests.export.ytvis_eval import YTVIS
from tests.helpers import demo_pipeline, export_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(clips: dict[str, Path], tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported")
    demo_pipeline().run([clips["a"], clips["b"], clips["broken"]], out, executor="local", show_progress=False)
    return out


def export(run_dir: Path, out: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out), *args], terminal_width=300)
    assert result.exit_code == 0, result.output
    return result.output


def test_parquet_export_matches_the_run_and_loads_in_datasets(run_dir: Path, tmp_path: Path) -> None:
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from datasets import load_dataset

    export(run_dir, tmp_path, "--format", "parquet")
    export(run_dir, tmp_path / "parts", "--format", "parquet", "--parts")
    for table in ("videos", "objects", "qa"):
        ours = pq.read_table(tmp_path / f"{table}.parquet")
        assert ours.equals(RunDir(str(run_dir)).read_export(table))
        parts = pq.read_table(tmp_path / "parts" / table)  # a folder of parts reads as one table
        assert parts.sort_by("video_id").to_pylist() == ours.to_pylist()
        assert ours.num_rows >= 2
        ds = load_dataset("parquet", data_files=str(tmp_path / f"{table}.parquet"), split="train",
                          cache_dir=str(tmp_path / "hf"))
        assert len(ds) == ours.num_rows and ds.column_names == ours.column_names


def test_every_format_writes_what_its_reader_takes(run_dir: Path, tmp_path: Path) -> None:
    export(run_dir, tmp_path / "ytvis", "--format", "ytvis", "--rle", "uncompressed")
    with contextlib.redirect_stdout(io.StringIO()):
        api = YTVIS(str(tmp_path / "ytvis" / "ytvis.json"))
    assert len(api.getVidIds()) == 2 and len(api.getAnnIds()) >= 1
    export(run_dir, tmp_path / "coco", "--format", "coco")
    coco = json.loads((tmp_path / "coco" / "coco_instances.json").read_text())
    assert len(coco["images"]) == sum(len(v["frame_indices"]) for v in export_rows(run_dir, "videos"))
    output = export(run_dir, tmp_path / "vg", "--format", "videoglamm-a", "--split", "val", "--max-phrases", "2")
    assert "2 of 2 videos have grounded phrases" in output
    for video_id in ("clip_a", "clip_b"):
        caption = json.loads((tmp_path / "vg" / "vidstg_gcg" / "val_captions" / f"{video_id}.json").read_text())
        assert caption["caption"].count("](") == 2
    export(run_dir, tmp_path / "vg", "--format", "videoglamm-b", "--split", "val")
    data = json.loads((tmp_path / "vg" / "video_gcg" / "instruction_data" / "val.json").read_text())
    assert all(len(v["dense_cap"]["token_pos"]) >= 1 for v in data["videos"])


def test_bad_format_is_one_line_exit_2(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(tmp_path), "--format", "labelme"])
    assert result.exit_code == 2 and "use one of parquet, coco, cvat, cvat-images, grandf" in result.output


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"] or "")
        if tag == "img":
            self.images.append(a["src"] or "")

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.cells.append(data.strip())


def test_report_is_one_file_with_every_section_and_embedded_plots(run_dir: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(run_dir)], terminal_width=300)
    assert result.exit_code == 0, result.output
    page = _Page()
    page.feed((run_dir / "report.html").read_text())
    assert page.sections == list(SECTIONS)
    assert len(page.images) >= 7  # five plots + at least two thumbnails
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.cells
    assert text[text.index("videos") + 1] == "2" and text[text.index("errors") + 1] == "1"
    assert text[text.index("policy") + 1] == "2", "both finished videos passed the gate by its policy"
    assert any(t.startswith("ingest: VideoError") for t in text)
