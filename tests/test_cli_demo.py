"""`annotator demo` end to end (local executor): the bundled clip becomes a grounded dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from tests.helpers import export_rows

pytestmark = pytest.mark.slow


def test_demo_writes_triplets_with_masks_at_frame_size(tiny_models, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--output", str(out), "--executor", "local"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert f"run directory: {out.resolve()}" in result.output
    qa = export_rows(out, "qa")
    objects = {o["object_id"]: o for o in export_rows(out, "objects")}
    assert len(qa) >= 1
    for row in qa:
        assert row["answer"].count("[SEG]") == len(row["object_ids"]) >= 1
        assert sorted(row["object_ids"]) == sorted(objects)
    for obj in objects.values():
        decoded = masks.decode_batch(obj["mask_rles"], obj["height"], obj["width"])
        assert decoded.shape[1:] == (720, 1280) and len(decoded) == len(obj["frame_indices"]) == 11
