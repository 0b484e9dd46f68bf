"""CVAT interop: the export parses with Datumaro's CVAT importer with every track and frame, and an edited
CVAT file imported with `annotator review import` becomes exactly the matching decisions."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from annotator.export.cvat import cvat_rle, from_cvat_rle
from annotator.review.items import ReviewRun
from annotator.review.store import DecisionStore


def test_cvat_rle_round_trips() -> None:
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (5, 7), (40, 30)):
        for _ in range(20):
            mask = rng.random((h, w)) < rng.random()
            encoded = cvat_rle(mask)
            if not mask.any():
                assert encoded is None
                continue
            assert encoded is not None
            assert (from_cvat_rle(*encoded, h, w) == mask).all()


def export(run: Path, fmt: str, out: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(run), "--format", fmt, "--out", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output


def test_cvat_images_export_loads_in_datumaro_with_every_track_and_frame(pending_run: Path, tmp_path: Path) -> None:
    import datumaro as dm

    export(pending_run, "cvat-images", tmp_path / "cvat")
    review = ReviewRun(str(pending_run))
    for vid in ("v1", "v4"):
        item = review.current(vid)
        assert item.info is not None
        dataset = dm.Dataset.import_from(str(tmp_path / "cvat" / vid), "cvat")
        frames = {it.attributes["frame"]: it for it in dataset}
        assert sorted(frames) == item.info.frame_indices
        labels = dataset.categories()[dm.AnnotationType.label]
        for obj in item.objects:
            ours = masks.decode_batch(obj.masks.rles, item.info.height, item.info.width)
            for position, mask in zip(obj.masks.frames, ours, strict=True):
                (theirs,) = [a for a in frames[item.info.frame_indices[position]].annotations
                             if int(a.attributes["track_id"]) == obj.object_id]
                assert labels[theirs.label].name == item.phrases[obj.phrase].norm
                assert (theirs.image.astype(bool) == mask).all()


def test_an_edited_cvat_file_becomes_the_matching_decisions(pending_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(pending_run, run)
    export(run, "cvat", tmp_path / "cvat")
    path = tmp_path / "cvat" / "v2" / "annotations.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    tracks = {int(t.attrib["id"]): t for t in root.iter("track")}
    item = ReviewRun(str(run)).current("v2")
    assert item.info is not None
    assert sorted(tracks) == sorted(o.object_id for o in item.objects)
    for obj in item.objects:
        shown = [int(m.attrib["frame"]) for m in tracks[obj.object_id].iter("mask") if m.attrib["outside"] == "0"]
        assert shown == [item.info.frame_indices[p] for p in obj.masks.frames]
    for attr in tracks[1].iter("attribute"):
        attr.text = "a fluffy rabbit"
    root.remove(tracks[2])
    edited = np.zeros((item.info.height, item.info.width), bool)
    edited[20:60, 30:90] = True
    first = next(m for m in tracks[3].iter("mask") if m.attrib["frame"] == "0")
    rle, left, top, width, height = cvat_rle(edited) or ("", 0, 0, 0, 0)
    first.attrib.update(rle=rle, left=str(left), top=str(top), width=str(width), height=str(height))
    tree.write(path)

    result = CliRunner().invoke(app, ["review", "import", str(run), str(path)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "drop: 1" in result.output and "fix_mask: 1" in result.output and "rename: 1" in result.output
    store = DecisionStore(str(run))
    rows = {(d.action, d.object): d for d in store.history("v2")}
    assert set(rows) == {("rename", 1), ("drop", 2), ("fix_mask", 3)}
    assert {d.reviewer for d in rows.values()} == {"cvat-import"}
    assert rows[("rename", 1)].payload == {"text": "a fluffy rabbit"}
    fix = rows[("fix_mask", 3)].payload
    got = masks.decode_batch(fix["rles"], item.info.height, item.info.width)
    (track3,) = [o for o in item.objects if o.object_id == 3]
    expected = masks.decode_batch(track3.masks.rles, item.info.height, item.info.width)
    expected[0] = edited
    assert fix["frames"] == track3.masks.frames and (got == expected).all()
    again = CliRunner().invoke(app, ["review", "import", str(run), str(path)], terminal_width=300)
    assert again.exit_code == 0 and "none" in again.output, "nothing new: no decision appended twice"
    bad = CliRunner().invoke(app, ["review", "import", str(run), str(tmp_path / "nope.xml")])
    assert bad.exit_code == 2 and "not readable CVAT XML" in bad.output
