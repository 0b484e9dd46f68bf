"""Awkward real inputs in one run: each ends processed or as a row with its reason, the good ones always finish,
and the report and every export work on what finished (no invalid RLE from tiny frames)."""

from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from annotator.rundir import RunDir
from tests.helpers import demo_pipeline, export_rows
from tests.test_inputs import clip

pytestmark = pytest.mark.slow


def raw(path: Path, w: int, h: int, frames: int = 4, codec: str = "ffv1", pix: str = "yuv444p",
        pts: list[int] | None = None, options: dict[str, str] | None = None) -> Path:
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, pix
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
            if pts:
                frame.pts, frame.time_base = pts[i], Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def last_frame_missing(path: Path, frames: int = 12) -> Path:
    """An MP4 whose index (moov first) lists every frame but whose last frame's bytes are gone."""
    raw(path, 64, 48, frames=frames, codec="mpeg4", pix="yuv420p", options={"movflags": "faststart"})
    with av.open(str(path)) as container:
        last = [p.pos for p in container.demux(container.streams.video[0]) if p.size][-1]
    path.write_bytes(path.read_bytes()[:last])
    return path


def zero_frames(path: Path) -> Path:
    """A valid MP4 container whose video track never got a frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    (root / "zero_bytes.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("this is not a video")
    good = clip(root / "good.mp4", frames=12, noise=True)
    (root / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    over = clip(root / "overstated.avi", "mpeg4", "avi", frames=40, noise=True)
    over.write_bytes(over.read_bytes()[: int(over.stat().st_size * 0.55)])
    last_frame_missing(root / "last_frame_missing.mp4")
    zero_frames(root / "zero_frames.mp4")
    raw(root / "one_by_one.mkv", 1, 1)
    raw(root / "two_by_three.mkv", 3, 2)
    raw(root / "seven_by_five.mkv", 5, 7)
    raw(root / "big.mp4", 4000, 3000, frames=3, codec="mpeg4", pix="yuv420p")
    raw(root / "clip.webm", 64, 48, codec="libvpx", pix="yuv420p")
    raw(root / "vfr.mkv", 64, 48, frames=6, pts=[0, 1, 4, 5, 10, 11])
    clip(root / "broadcast.ts", "mpeg2video", "mpegts", noise=True)
    clip(root / "old.mpg", "mpeg1video", "mpeg", noise=True)
    clip(root / "web.flv", "flv", "flv", noise=True)
    clip(root / "vidéo été 1.mp4", frames=6, noise=True)
    clip(root / "a" / "same.mp4", frames=6, noise=True)
    clip(root / "b" / "same.mp4", frames=6, noise=True)
    cv2.imwrite(str(root / "cover.jpg"), np.zeros((8, 8, 3), np.uint8))
    shot = root / "b" / "shot"
    shot.mkdir()
    for n in (1, 2, 5):
        cv2.imwrite(str(shot / f"{n:05d}.jpg"), np.full((48, 64, 3), 40 * n, np.uint8))
    (shot / "00007.jpg").write_bytes(b"broken")
    os.symlink(root, root / "a" / "loop")
    return root


def test_every_input_ends_processed_or_with_its_reason(zoo: Path, tiny_models, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    duplicates = [zoo, zoo / "good.mp4", zoo / "good.mp4"]  # the same file named three ways: one video
    summary = demo_pipeline("stages.ingest.params.target_fps=null").run(duplicates, run_dir, executor="local",
                                                                        show_progress=False)
    run = RunDir(str(run_dir))
    inputs = {Path(r["path"]).name: r for r in run.read_inputs()}
    assert inputs["cover.jpg"]["status"] == "skipped" and "stray image" in inputs["cover.jpg"]["reason"]
    assert inputs["loop"]["status"] == "skipped" and "symlink loop" in inputs["loop"]["reason"]
    errors = {r["video_id"]: r for r in run.read_errors().to_pylist()}
    for vid in ("zero_bytes", "text", "truncated", "zero_frames"):
        assert errors[vid]["stage"] == "ingest" and "cannot open as a video" in errors[vid]["message"]
    assert "holds no video stream with frames" in errors["zero_frames"]["message"]
    assert errors["one_by_one"]["stage"] == "ingest", errors["one_by_one"]
    assert "frame 1x1 is smaller than 2x2 pixels" in errors["one_by_one"]["message"]
    done = {r["video_id"]: r for r in export_rows(run_dir, "videos")}
    changed = {name: f"{name}-{hashlib.sha256(str(zoo / rel).encode()).hexdigest()[:8]}"  # names that had to change
               for name, rel in (("vid_o_t_1", "vidéo été 1.mp4"), ("a_same", "a/same.mp4"),
                                 ("b_same", "b/same.mp4"), ("b_shot", "b/shot"))}
    assert set(done) >= {"good", "overstated", "two_by_three", "seven_by_five", "big", "clip", "vfr", "broadcast",
                         "last_frame_missing", "old", "web", *changed.values()}
    assert summary.videos == len(done) + len(errors) == 20, "every queued input is finished or an error"
    assert done[changed["b_shot"]]["frame_indices"] == [1, 2, 5]
    assert done["overstated"]["num_frames"] < 40
    assert done["last_frame_missing"]["num_frames"] == 11
    for obj in export_rows(run_dir, "objects"):
        decoded = masks.decode_batch(obj["mask_rles"], obj["height"], obj["width"])
        assert decoded.shape == (len(obj["frame_indices"]), obj["height"], obj["width"])
    runner = CliRunner()
    for args in (["report", str(run_dir)], ["export", str(run_dir), "--format", "videoglamm-a", "--out",
                                            str(tmp_path / "vg")],
                 ["export", str(run_dir), "--format", "ytvis", "--out", str(tmp_path / "yt")]):
        result = runner.invoke(app, args, terminal_width=300)
        assert result.exit_code == 0, result.output
    ytvis = json.loads((tmp_path / "yt" / "ytvis.json").read_text())
    assert len(ytvis["videos"]) == len(done)
