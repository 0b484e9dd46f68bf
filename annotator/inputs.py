"""Input discovery with rules a user can predict, and stable video ids.

- A file is a video when FFmpeg opens it with a video stream (known video suffixes are taken as videos and
  checked when ingested; any other suffix is probed). Images and anything else given as a file are skipped.
- A folder is searched recursively (unless `recursive=False`): the videos in it are inputs, its subfolders are
  searched too. A folder is a *frame folder* (one video made of images) only when it holds images and no videos;
  images in a folder that holds videos are skipped, each with its reason.
- Symlink loops, unreadable entries and files that are not media each become a skipped row, never a silent drop.
- A video's id depends only on its own path relative to the input root it was found under (letters, digits,
  `_` and `-`, no dots); ids that collide get a short hash of their path.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av

from annotator import storage

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".flv",
                  ".wmv", ".3gp", ".ogv", ".vob", ".mxf", ".y4m"}
FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class Input:
    """One row of `inputs.parquet`: a video to process (`queued`) or a path skipped with its reason."""

    video_id: str
    path: str
    status: str  # queued | skipped
    reason: str = ""


def _suffix(path: str) -> str:
    return Path(storage.name(path)).suffix.lower()


def is_video_file(path: str) -> bool:
    """A known video suffix, or a container FFmpeg opens with a video stream (header only, nothing decoded)."""
    if _suffix(path) in VIDEO_SUFFIXES:
        return True
    if _suffix(path) in FRAME_SUFFIXES:
        return False
    try:
        if storage.is_uri(path):
            fs, p = storage.filesystem(path)
            with fs.open(p, "rb") as fh, av.open(fh) as container:
                return bool(container.streams.video)
        with av.open(path) as container:
            return bool(container.streams.video) and container.format.name not in ("image2", "png_pipe", "jpeg_pipe")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return False


# 2: a name changed to become an id carries its path's hash; 1: a hash only when two ids collide (run directories
# made before rule 2 keep it, so their ids never change)
ID_RULE = 2


def _path_hash(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:8]


def video_id(root: str, path: str, folder: bool = False, rule: int = ID_RULE) -> str:
    """The id of the video at `path`, from its path relative to `root` alone: letters, digits, `_` and `-`. Under
    rule 2, a name that had to change (a space, a dot, a subfolder's `/`, a non-ASCII letter) ends in the short
    hash of its path, so no file added later can take its id and force a rename."""
    rel = path[len(root):].strip("/") if path.startswith(root) else storage.name(path)
    stem = rel if folder or "." not in storage.name(rel) else rel.rsplit(".", 1)[0]
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_") or "video"
    return f"{base}-{_path_hash(path)}" if rule >= 2 and base != stem else base


class _Walk:
    def __init__(self, recursive: bool) -> None:
        self.recursive = recursive
        self.found: list[tuple[str, str, bool]] = []  # (root, path, is frame folder)
        self.skipped: list[Input] = []
        self.seen: set[str] = set()

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(Input("", path, "skipped", reason))

    def file(self, root: str, path: str) -> None:
        if _suffix(path) in FRAME_SUFFIXES:
            self.skip(path, "an image, not a video (a folder of images is read as one video's frames)")
        elif is_video_file(path):
            self.found.append((root, path, False))
        else:
            self.skip(path, "not a video: FFmpeg finds no video stream in it")

    def folder(self, root: str, path: str) -> None:
        real = os.path.realpath(path) if not storage.is_uri(path) else path
        if real in self.seen:
            self.skip(path, "symlink loop (this folder was already searched)")
            return
        self.seen.add(real)
        try:
            fs, stripped = storage.filesystem(path)
            entries = sorted(fs.ls(stripped, detail=True), key=lambda e: e["name"])
        except PermissionError:
            self.skip(path, "cannot be read (permission denied)")
            return
        except OSError as exc:
            self.skip(path, f"cannot be read ({exc.strerror or type(exc).__name__})")
            return
        files, folders = [], []
        for entry in entries:
            child = storage.join(path, storage.name(entry["name"]))
            if storage.name(child).startswith("."):
                continue
            kind = entry["type"]
            if entry.get("islink") and not storage.is_uri(child):  # a symlink: what it points to decides
                kind = "directory" if os.path.isdir(child) else "file" if os.path.isfile(child) else "broken link"
            if kind == "directory":
                folders.append(child)
            elif kind == "file":
                files.append(child)
            elif kind == "broken link":
                self.skip(child, "broken symlink (its target does not exist)")
            else:
                self.skip(child, f"not a regular file ({kind})")
        images = [f for f in files if _suffix(f) in FRAME_SUFFIXES]
        others = [f for f in files if _suffix(f) not in FRAME_SUFFIXES]
        videos = [f for f in others if is_video_file(f)]
        if images and not videos:  # a frame folder given itself is named after itself, not ""
            self.found.append((root if path != root else path.rsplit("/", 1)[0], path, True))
        for f in videos:
            self.found.append((root, f, False))
        for f in others:
            if f not in videos:
                self.skip(f, "not a video: FFmpeg finds no video stream in it")
        if images and videos:
            for f in images:
                self.skip(f, "stray image in a folder of videos (a frame folder holds images only)")
        for sub in folders:
            if self.recursive:
                self.folder(root, sub)
            else:
                self.skip(sub, "subfolder not searched (--no-recursive)")


def discover(paths: list[str | Path], recursive: bool = True, id_rule: int = ID_RULE
             ) -> tuple[list[tuple[str, str]], list[Input]]:
    """(video_id, path) of every video input (ids by `id_rule`), and every path skipped with its reason."""
    walk = _Walk(recursive)
    for raw in paths:
        p = str(raw).rstrip("/") if storage.is_uri(raw) else str(Path(raw).absolute())
        if not storage.exists(p):
            walk.skip(str(raw), "does not exist")
        elif storage.isdir(p):
            walk.folder(p, p)
        else:
            walk.file(p.rsplit("/", 1)[0], p)
    return assign_ids(walk.found, id_rule), walk.skipped


def assign_ids(found: list[tuple[str, str, bool]], rule: int = ID_RULE) -> list[tuple[str, str]]:
    """(video_id, path) pairs in order; the same path named twice is one input. Ids that still collide (rule 1,
    or a file literally named like another's hashed id) get their path's hash."""
    unique: dict[str, tuple[str, bool]] = {}
    for root, path, folder in found:
        unique.setdefault(path, (root, folder))
    base = [(video_id(root, path, folder, rule), path) for path, (root, folder) in unique.items()]
    counts = Counter(vid for vid, _ in base)
    return [(f"{vid}-{_path_hash(path)}" if counts[vid] > 1 else vid, path) for vid, path in base]
