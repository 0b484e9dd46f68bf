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
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    """What a discovery found, as Arrow chunks of one root each (no Python object per video kept), and what it
    skipped with reasons."""

    def __init__(self, recursive: bool) -> None:
        self.recursive = recursive
        self.found: list[tuple[str, pa.Array, bool]] = []  # (root, paths, are frame folders)
        self.skipped: list[Input] = []
        self.seen: set[str] = set()

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(Input("", path, "skipped", reason))

    def file(self, root: str, path: str) -> None:
        if _suffix(path) in FRAME_SUFFIXES:
            self.skip(path, "an image, not a video (a folder of images is read as one video's frames)")
        elif is_video_file(path):
            self.found.append((root, pa.array([path], pa.string()), False))
        else:
            self.skip(path, "not a video: FFmpeg finds no video stream in it")

    def folder(self, root: str, path: str) -> None:
        real = os.path.realpath(path) if not storage.is_uri(path) else path
        if real in self.seen:
            self.skip(path, "symlink loop (this folder was already searched)")
            return
        self.seen.add(real)
        try:
            entries = _entries(path)
        except PermissionError:
            self.skip(path, "cannot be read (permission denied)")
            return
        except OSError as exc:
            self.skip(path, f"cannot be read ({exc.strerror or type(exc).__name__})")
            return
        entries = entries.filter(pc.invert(pc.starts_with(entries["name"], ".")))
        kind = entries["kind"]
        folders = [storage.join(path, n) for n in entries.filter(pc.equal(kind, "directory"))["name"].to_pylist()]
        odd = entries.filter(pc.invert(pc.is_in(kind, pa.array(["file", "directory"]))))
        for name, what in zip(odd["name"].to_pylist(), odd["kind"].to_pylist(), strict=True):
            child = storage.join(path, name)
            self.skip(child, "broken symlink (its target does not exist)" if what == "broken link"
                      else f"not a regular file ({what})")
        names = entries.filter(pc.equal(kind, "file"))["name"].combine_chunks()
        del entries, kind, odd
        suffix = _suffixes(names)
        image = pc.is_in(suffix, pa.array(sorted(FRAME_SUFFIXES))).to_numpy(zero_copy_only=False)
        video = pc.is_in(suffix, pa.array(sorted(VIDEO_SUFFIXES))).to_numpy(zero_copy_only=False).copy()
        unknown = np.flatnonzero(~image & ~video)  # any other suffix is probed, one file at a time
        for i, name in zip(unknown, names.take(pa.array(unknown)).to_pylist(), strict=True):
            video[i] = is_video_file(storage.join(path, name))
        paths = pc.binary_join_element_wise(pa.scalar(f"{path.rstrip('/')}/"), names, "")
        videos = paths if video.all() else paths.filter(pa.array(video))
        if image.any() and not len(videos):  # a frame folder given itself is named after itself, not ""
            self.found.append((root if path != root else path.rsplit("/", 1)[0], pa.array([path], pa.string()), True))
        if len(videos):
            self.found.append((root, videos, False))
        for f in paths.filter(pa.array(~image & ~video)).to_pylist():
            self.skip(f, "not a video: FFmpeg finds no video stream in it")
        if image.any() and len(videos):
            for f in paths.filter(pa.array(image)).to_pylist():
                self.skip(f, "stray image in a folder of videos (a frame folder holds images only)")
        del names, paths, videos
        for sub in folders:
            if self.recursive:
                self.folder(root, sub)
            else:
                self.skip(sub, "subfolder not searched (--no-recursive)")


def _suffixes(names: pa.Array) -> pa.Array:
    """Each name's lower-case suffix as `Path(name).suffix` gives it (`.mp4`; "" for none), in Arrow."""
    if not len(names):
        return pa.array([], pa.string())
    found = pc.extract_regex(names, r"^.+(?P<s>\.[^.]+)$")
    return pc.fill_null(pc.utf8_lower(found.field("s")), "")


def _entries(path: str, chunk: int = 10_000) -> pa.Table:
    """(name, kind) of a folder's entries, sorted by name; kind is file, directory, broken link or another kind
    of file. Read into Arrow a chunk at a time: a folder of a million videos is never a million Python tuples.
    A symlink is what it points to."""
    names: list[str] = []
    kinds: list[str] = []
    tables: list[pa.Table] = []

    def flush() -> None:
        tables.append(pa.table({"name": pa.array(names, pa.string()), "kind": pa.array(kinds, pa.string())}))
        names.clear()
        kinds.clear()

    if not storage.is_uri(path):
        with os.scandir(path) as found:
            for entry in found:
                if entry.is_symlink():
                    kind = "directory" if os.path.isdir(entry.path) else "file" if os.path.isfile(entry.path) \
                        else "broken link"
                else:
                    kind = "directory" if entry.is_dir() else "file" if entry.is_file() else "other"
                names.append(entry.name)
                kinds.append(kind)
                if len(names) >= chunk:
                    flush()
    else:
        fs, stripped = storage.filesystem(path)
        for e in fs.ls(stripped, detail=True):
            names.append(storage.name(e["name"]))
            kinds.append(e["type"])
            if len(names) >= chunk:
                flush()
        fs.invalidate_cache(stripped)  # the listing is not kept in fsspec's cache for the rest of the run
    flush()
    return pa.concat_tables(tables).sort_by("name")


def discover_table(paths: list[str | Path], recursive: bool = True, id_rule: int = ID_RULE
                   ) -> tuple[pa.Table, list[Input]]:
    """(video_id, path) of every video input (ids by `id_rule`) as an Arrow table, and every path skipped with
    its reason."""
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


def discover(paths: list[str | Path], recursive: bool = True, id_rule: int = ID_RULE
             ) -> tuple[list[tuple[str, str]], list[Input]]:
    """`discover_table` as (video_id, path) pairs (small input sets, tests)."""
    found, skipped = discover_table(paths, recursive, id_rule)
    return list(zip(found["video_id"].to_pylist(), found["path"].to_pylist(), strict=True)), skipped


def assign_ids(found: list[tuple[str, pa.Array, bool]], rule: int = ID_RULE, chunk: int = 10_000) -> pa.Table:
    """(video_id, path) in order from chunks of (root, paths, are frame folders); ids made a chunk of rows at a
    time; the same path named twice is one input. Ids that still collide (rule 1, or a file literally named like
    another's hashed id) get their path's hash."""
    paths = pa.chunked_array([p for _, p, _ in found], pa.string())
    source = pa.chunked_array([pa.array(np.full(len(p), i, dtype=np.int32)) for i, (_, p, _) in enumerate(found)],
                              pa.int32())
    rows = pa.table({"path": paths, "chunk": source})
    if rows.num_rows and pc.count_distinct(rows["path"]).as_py() < rows.num_rows:  # keep each path's first
        first = rows.append_column("_i", pa.array(np.arange(rows.num_rows))).group_by("path", use_threads=False) \
            .aggregate([("_i", "min")])["_i_min"]
        rows = rows.take(pa.array(np.sort(first.to_numpy())))
    ids = []
    for start in range(0, rows.num_rows, chunk):
        part = rows.slice(start, chunk)
        ids.append(pa.array([video_id(found[c][0], path, found[c][2], rule) for path, c in zip(
            part["path"].to_pylist(), part["chunk"].to_pylist(), strict=True)], pa.string()))
    table = pa.table({"video_id": pa.chunked_array(ids, pa.string()).combine_chunks(),
                      "path": rows["path"].combine_chunks()})
    counts = pc.value_counts(table["video_id"]) if table.num_rows else None
    if counts is None or pc.max(counts.field("counts")).as_py() < 2:
        return table
    twice = pc.is_in(table["video_id"], counts.filter(pc.greater(counts.field("counts"), 1)).field("values"))
    clashing = table.filter(twice)
    renamed = pa.array([f"{vid}-{_path_hash(path)}" for vid, path in zip(
        clashing["video_id"].to_pylist(), clashing["path"].to_pylist(), strict=True)], pa.string())
    return table.set_column(0, "video_id", pc.replace_with_mask(table["video_id"].combine_chunks(),
                                                                 twice.combine_chunks(), renamed))
