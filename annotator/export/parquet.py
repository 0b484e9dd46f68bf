"""Canonical Parquet export: `videos`, `objects` (per-frame RLE masks) and `qa` tables.

During a run the final stage's workers write one part per table per batch as videos finish
(`export/parquet/<table>/part-*.parquet`); `annotator export --format parquet` merges the current parts into one
file per table, part by part (`--parts`: copies them). Frame numbers are source-video frame indices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from annotator import storage
from annotator.export.base import Exported, Exporter, ExportOptions, register_exporter, spooled
from annotator.records import OBJECTS_SCHEMA, QA_SCHEMA, VIDEOS_SCHEMA, VideoItem

if TYPE_CHECKING:
    from annotator.rundir import RunDir

SCHEMAS = {"videos": VIDEOS_SCHEMA, "objects": OBJECTS_SCHEMA, "qa": QA_SCHEMA}


def tables(items: list[VideoItem], pipeline: str, run_id: str, fingerprints: dict[str, str]) -> dict[str, pa.Table]:
    videos, objects, qa = [], [], []
    provenance = json.dumps(fingerprints, sort_keys=True)
    for it in items:
        if it.error is not None or it.info is None:
            continue
        info = it.info
        videos.append({
            "video_id": it.video_id, "path": it.path, "width": info.width, "height": info.height,
            "fps": info.fps, "num_frames": info.num_frames, "frame_indices": info.frame_indices,
            "keyframe_indices": [info.frame_indices[k] for k in info.keyframes],
            "caption": it.caption, "caption_model": it.caption_model,
        })
        for obj in it.objects:
            phrase = it.phrases[obj.phrase]
            objects.append({
                "video_id": it.video_id, "object_id": obj.object_id, "phrase": phrase.text,
                "phrase_norm": phrase.norm, "phrase_start": phrase.start, "phrase_end": phrase.end,
                "track_ids": obj.track_ids, "height": info.height, "width": info.width,
                "frame_indices": [info.frame_indices[f] for f in obj.masks.frames],
                "mask_rles": obj.masks.rles, "mask_scores": obj.masks.scores, "provenance": obj.provenance,
            })
        for q in it.qa:
            qa.append({
                "video_id": it.video_id, "qa_id": q.qa_id, "question": q.question, "answer": q.answer,
                "object_ids": q.object_ids, "caption": it.caption, "pipeline": pipeline, "run_id": run_id,
                "stage_fingerprints": provenance,
            })
    return {
        "videos": pa.Table.from_pylist(videos, schema=VIDEOS_SCHEMA),
        "objects": pa.Table.from_pylist(objects, schema=OBJECTS_SCHEMA),
        "qa": pa.Table.from_pylist(qa, schema=QA_SCHEMA),
    }


def merge_parts(run: RunDir, out_dir: str, finished: pa.Table) -> list[str]:
    """One file per table, written part by part (a row group each, in the order the parts were written):
    memory holds one part."""
    written = []
    for name, schema in SCHEMAS.items():
        path = storage.join(out_dir, f"{name}.parquet")
        with spooled(path, "wb") as handle:
            writer = pq.ParquetWriter(handle, schema)
            for _, data in run.current_parts(name, finished=finished):
                if data.num_rows:
                    writer.write_table(data.select(schema.names).cast(schema))
            writer.close()
        written.append(path)
    return written


def copy_parts(run: RunDir, out_dir: str, finished: pa.Table) -> list[str]:
    """Each current export part, filtered to its current videos, under `out/<table>/`."""
    written = []
    for name in SCHEMAS:
        for part, data in run.current_parts(name, finished=finished):
            if data.num_rows:
                target = storage.join(out_dir, name, storage.name(part))
                storage.write_table(target, data)
                written.append(target)
    return written


@register_exporter
class ParquetExporter(Exporter):
    """Straight from the export parts the workers wrote: no item is rebuilt."""

    name = "parquet"

    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported:
        finished = run.finished_table()
        paths = (merge_parts if options.merge else copy_parts)(run, str(out), finished)
        return Exported(paths, finished.num_rows)


def write_parquet(tables_by_name: dict[str, pa.Table], out_dir: str, merge: bool = True) -> dict[str, str]:
    """Write export tables under `out_dir`: `<table>.parquet` (merged) or `<table>/part-000000.parquet`."""
    written = {}
    for name, table in tables_by_name.items():
        path = storage.join(out_dir, f"{name}.parquet" if merge else f"{name}/part-000000.parquet")
        storage.write_table(path, table.sort_by([("video_id", "ascending")]))
        written[name] = path
    return written
