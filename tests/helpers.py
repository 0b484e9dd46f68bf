"""Shared test helpers: the demo pipeline shrunk for short clips, and readers for a run's export."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from annotator import paths
from annotator.config import load_config
from annotator.pipeline import Pipeline

DEMO = paths.PIPELINES_DIR / "demo.yaml"
SMALL = ["stages.ingest.params.target_fps=8", "stages.ingest.params.max_frames=6"]


def demo_pipeline(*overrides: str) -> Pipeline:
    return Pipeline(load_config(DEMO, [*SMALL, *overrides]), str(DEMO))


def export_rows(run_dir: Path, table: str) -> list[dict]:
    rows = pq.read_table(run_dir / "export" / "parquet" / f"{table}.parquet").to_pylist()
    return sorted(rows, key=lambda r: (r["video_id"], r.get("object_id") or r.get("qa_id") or ""))
