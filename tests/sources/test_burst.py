"""BURST's own layout through the masks-only route: track ids kept, masks bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotator import masks
from tests.helpers import export_rows, run_source
from tests.sources.formats import write_burst
from tests.sources.test_masks_route import tagger
from tests.synthetic import H, W


def test_burst_tracks_keep_their_ids_and_masks(tmp_path: Path) -> None:
    annotations, frames_root, expected = write_burst(tmp_path / "src")
    result, _ = run_source("ytvis_masks.yaml", tmp_path / "run", annotations, frames_root,
                           "--set", "stages.source.params.kind=burst", tagger=tagger)
    assert result.exit_code == 0, result.output
    (video,) = export_rows(tmp_path / "run", "videos")
    assert video["video_id"] == "YFCC100M_seq_7" and video["frame_indices"] == [5 * t for t in range(12)]
    (qa,) = export_rows(tmp_path / "run", "qa")
    assert qa["object_ids"] == sorted(o for _, o in expected)[:-1], "ids kept; the untagged last one left out"
    for obj in export_rows(tmp_path / "run", "objects"):
        want = expected[(obj["video_id"], obj["object_id"])]
        frames = [t for t, m in enumerate(want) if m is not None]
        assert obj["frame_indices"] == [5 * t for t in frames]
        assert np.array_equal(masks.decode_batch(obj["mask_rles"], H, W), np.stack([want[t] for t in frames]))
