"""Referring-expression sources (Ref-YouTube-VOS palette PNGs, MeViS RLE) through the masks-only route: ids kept,
every object's masks in the export bit-identical to the source's, each grounded phrase linked to its object."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from annotator import masks
from annotator.sources import read_source
from tests.helpers import export_rows, run_source
from tests.sources.formats import write_mevis, write_refytvos
from tests.sources.test_masks_route import tagger
from tests.synthetic import H, W


@pytest.mark.parametrize(("kind", "writer", "root_of"), [
    ("refytvos", write_refytvos, lambda meta: meta.parents[2]),
    ("mevis", write_mevis, lambda meta: meta.parent),
])
def test_reference_sources_keep_their_masks(tmp_path: Path, kind: str, writer: Callable, root_of: Callable) -> None:
    meta, truth = writer(tmp_path / "src")
    records = read_source(kind, str(meta), str(root_of(meta)))
    (record,) = records.values()
    assert sorted(o.object_id for o in record.objects) == sorted(o for _, o in truth)
    result, requests = run_source(f"{kind}_refs.yaml", tmp_path / "run", meta, root_of(meta), tagger=tagger)
    assert result.exit_code == 0, result.output
    prompt = requests[0]["body"]["messages"][0]["content"]
    if kind == "refytvos":
        assert "4: a cup / the round thing" not in prompt and "4: a cup" in prompt
    (qa,) = export_rows(tmp_path / "run", "qa")
    objects = {o["object_id"]: o for o in export_rows(tmp_path / "run", "objects")}
    assert qa["object_ids"] == sorted(o for _, o in truth)[:-1] == sorted(objects)
    for object_id, obj in objects.items():
        (want,) = [m for (v, o), m in truth.items() if o == object_id]
        frames = [t for t, m in enumerate(want) if m.any()]
        assert obj["frame_indices"] == [5 * t for t in frames]
        assert np.array_equal(masks.decode_batch(obj["mask_rles"], H, W), np.stack([want[t] for t in frames]))
        assert f"<p> {obj['phrase']} </p> [SEG]" in qa["answer"]
