from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator import masks, video
from annotator.sources.ytvis import SourceError, read_ytvis
from tests.export.ytvis_fixture import make_ytvis_gt
from tests.synthetic import H, W


def test_reader_turns_every_encoding_into_records(tmp_path: Path) -> None:
    path, frames_root, expected = make_ytvis_gt(tmp_path)
    items = read_ytvis(path, frames_root)
    assert [it.video_id for it in items] == ["scene_a", "scene_b"]
    a = items[0]
    assert a.info is not None and (a.info.width, a.info.height, a.info.num_frames) == (W, H, 24)
    assert video.probe(a.path).num_frames == 24  # the frame folder is a readable video
    assert [o.object_id for o in a.objects] == [11, 12, 13, 14, 15, 19]
    assert [a.phrases[o.phrase].norm for o in a.objects] == ["cat", "rocket", "astronaut face", "cup", "flag", "sign"]
    assert all(p.start == p.end == -1 for p in a.phrases)
    for it, vid in zip(items, (1, 2), strict=True):
        for obj in it.objects:
            want = expected[vid, obj.object_id]
            assert obj.masks.frames == [t for t, m in enumerate(want) if m is not None]
            got = masks.decode_batch(obj.masks.rles, H, W)
            assert np.array_equal(got, np.stack([m for m in want if m is not None]))


def test_malformed_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": []}')
    with pytest.raises(SourceError, match=r"bad\.json: not a YouTube-VIS file"):
        read_ytvis(bad, tmp_path)
