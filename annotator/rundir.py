"""The run directory is the checkpoint: per-video stage outputs, errors, manifest, exports.

Every file is written to a temporary name in the same folder and renamed into place, so a run killed
at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from annotator.records import ERRORS_SCHEMA, VideoItem

_FINGERPRINT_KEY = b"annotator.fingerprint"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` then rename tmp to `path`; the tmp file is removed if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


def write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


class RunDir:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def errors_path(self) -> Path:
        return self.root / "errors.parquet"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def stage_path(self, stage: str, video_id: str) -> Path:
        return self.root / "stages" / stage / f"{video_id}.parquet"

    def write_stage_output(self, stage: str, item: VideoItem, fingerprint: str) -> None:
        """One row holding the item after `stage`; the fingerprint in the file metadata validates reuse."""
        table = pa.table({"video_id": [item.video_id], "item": [item.to_json()]})
        table = table.replace_schema_metadata({_FINGERPRINT_KEY: fingerprint.encode()})
        write_table(self.stage_path(stage, item.video_id), table)

    def read_stage_output(self, stage: str, video_id: str, fingerprint: str) -> VideoItem | None:
        """The cached item, or None when absent, unreadable or produced by a different configuration."""
        path = self.stage_path(stage, video_id)
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException):
            return None
        meta = table.schema.metadata or {}
        if meta.get(_FINGERPRINT_KEY, b"").decode() != fingerprint:
            return None
        return VideoItem.from_json(table.column("item")[0].as_py())

    def write_errors(self, items: list[VideoItem]) -> None:
        rows = [
            {
                "video_id": it.video_id,
                "path": it.path,
                "stage": it.error.stage,
                "error_type": it.error.error_type,
                "message": it.error.message,
            }
            for it in items
            if it.error is not None
        ]
        write_table(self.errors_path, pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA))

    def read_errors(self) -> pa.Table:
        if not self.errors_path.exists():
            return ERRORS_SCHEMA.empty_table()
        return pq.read_table(self.errors_path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
        atomic_write(self.manifest_path, lambda tmp: tmp.write_text(text))

    def read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            raise FileNotFoundError(f"{self.root} is not a run directory (no manifest.json)")
        return json.loads(self.manifest_path.read_text())

    def final_items(self) -> list[VideoItem]:
        """Every video that finished the run's last stage with the run's configuration, by video id."""
        manifest = self.read_manifest()
        last = manifest["stages"][-1]["stage"]
        fingerprint = manifest["fingerprints"][last]
        items = [self.read_stage_output(last, vid, fingerprint) for vid in self.completed_videos(last)]
        return [it for it in items if it is not None]

    def completed_videos(self, stage: str) -> list[str]:
        folder = self.root / "stages" / stage
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.exists() else []
