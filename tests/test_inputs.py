"""Input discovery: predictable rules, every path accounted for (processed or skipped with a reason), stable ids."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av
import numpy as np
import pytest

from annotator.inputs import discover


def clip(path: Path, codec: str = "mpeg4", fmt: str | None = None, frames: int = 6, noise: bool = False) -> Path:
    """A tiny real clip in the given container, written by FFmpeg through PyAV (noise: frames that do not
    compress, so the file's bytes are mostly frame data)."""
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) if noise
                     else np.full((48, 64, 3), (i * 30) % 256, np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def image(path: Path) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    clip(root / "a.mp4")
    clip(root / "broadcast.ts", "mpeg2video", "mpegts")
    clip(root / "old.mpg", "mpeg1video", "mpeg")
    clip(root / "web.flv", "flv", "flv")
    clip(root / "no_suffix_video", "mpeg4", "mp4")
    image(root / "cover.jpg")
    (root / "notes.txt").write_text("not a video")
    clip(root / "nested" / "deeper" / "b.mp4")
    for i in (1, 2, 5):
        image(root / "frames" / f"{i:05d}.jpg")
    os.symlink(root, root / "nested" / "loop")
    return root


def test_every_path_is_found_or_skipped_with_its_reason(tree: Path) -> None:
    found, skipped = discover([tree])
    assert dict(found) == {
        "a": str(tree / "a.mp4"), "broadcast": str(tree / "broadcast.ts"), "old": str(tree / "old.mpg"),
        "web": str(tree / "web.flv"), "no_suffix_video": str(tree / "no_suffix_video"),
        f"nested_deeper_b-{digest(tree / 'nested' / 'deeper' / 'b.mp4')}": str(tree / "nested" / "deeper" / "b.mp4"),
        "frames": str(tree / "frames"),
    }
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert reasons["cover.jpg"].startswith("stray image in a folder of videos")
    assert reasons["notes.txt"].startswith("not a video")
    assert reasons["loop"].startswith("symlink loop")
    assert all(s.status == "skipped" for s in skipped) and len(skipped) == 3


def test_no_recursive_reports_the_subfolders_it_did_not_search(tree: Path) -> None:
    found, skipped = discover([tree], recursive=False)
    assert set(dict(found)) == {"a", "broadcast", "old", "web", "no_suffix_video"}
    assert {Path(s.path).name for s in skipped if "--no-recursive" in s.reason} == {"nested", "frames"}


def test_ids_do_not_depend_on_the_other_inputs(tree: Path) -> None:
    before = dict(discover([tree])[0])
    clip(tree / "zzz_new.mp4")
    clip(tree / "nested" / "a.mp4")
    after = dict(discover([tree])[0])
    assert {k: after[k] for k in before} == before
    assert after[f"nested_a-{digest(tree / 'nested' / 'a.mp4')}"] == str(tree / "nested" / "a.mp4")


def test_duplicate_inputs_and_names_that_had_to_change(tmp_path: Path) -> None:
    a = clip(tmp_path / "x" / "clip one.mp4")
    b = clip(tmp_path / "x" / "clip_one.mp4")
    found, skipped = discover([a, a, b, tmp_path / "x"])
    assert len(found) == 2 and not skipped, "each path once, however often it is named"
    assert dict(found) == {f"clip_one-{digest(a)}": str(a), "clip_one": str(b)}, "a changed name carries its hash"
    alone, _ = discover([tmp_path / "x" / "clip one.mp4"])
    assert alone == [(f"clip_one-{digest(a)}", str(a))], "whatever else is there"
    legacy, _ = discover([tmp_path / "x"], id_rule=1)  # run directories made before rule 2 keep their ids
    assert dict(legacy) == {f"clip_one-{digest(a)}": str(a), f"clip_one-{digest(b)}": str(b)}
    assert discover([b], id_rule=1)[0] == [("clip_one", str(b))]


def digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]


def test_a_frame_folder_given_itself_and_an_image_file(tmp_path: Path) -> None:
    for i in range(3):
        image(tmp_path / "shot" / f"{i:05d}.png")
    found, skipped = discover([tmp_path / "shot", tmp_path / "shot" / "00000.png"])
    assert found == [("shot", str(tmp_path / "shot"))]
    assert [s.reason.split(",")[0] for s in skipped] == ["an image"]
