"""Where each video of the run's input set stands, read from the indexes: what the summary, the manifest's counts
and `errors.parquet` report, and which videos are short of a checkpoint.

Workers flush their checkpoints in buffers, so a worker lost mid-run takes its unflushed rows with it while the
videos went on downstream: such a video is *short* (a stage on its way has no row), though the driver saw it
pass. The run redoes short videos at once (`Pipeline.run`), and the counts come from here, not from the status
rows the driver tallied, so a video is never counted twice. Arrow throughout: only errors, filter reasons and
short videos become Python rows, never one per video.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from annotator.rundir import row_keys


@dataclass
class Outcomes:
    states: Counter[str] = field(default_factory=Counter)  # ok | error | filtered | pending | short
    reasons: Counter[str] = field(default_factory=Counter)  # filter reasons
    errors: list[dict[str, str]] = field(default_factory=list)  # errors.parquet rows
    short: dict[str, tuple[str, str]] = field(default_factory=dict)  # video_id -> (its path, the stage it lacks)

    def error_rows(self) -> list[dict[str, str]]:
        """errors.parquet: the errors, and a row for each video still short (after the run's repair passes), so
        no input goes unaccounted for."""
        short = [{"video_id": vid, "path": path, "stage": stage, "error_type": "CheckpointLost",
                  "message": "its checkpoint went with a lost worker and redoing it did not finish; run again"}
                 for vid, (path, stage) in self.short.items()]
        return sorted(self.errors + short, key=lambda r: r["video_id"])


class Walk:
    """Walks the videos `found` (video_id, path) through the stages in flow order, each to its first row that is
    not `ok`: per stage `begin`, its newest rows in any number of batches (`add`), `end`. `driver_errors`: status
    rows of errors no index holds (a worker lost, a call past its deadline), for a video whose walk finds no row.
    What it holds is the keys of the videos still walking, not the stages' rows."""

    def __init__(self, found: pa.Table, driver_errors: list[dict[str, str]]) -> None:
        self.lost = {r["video_id"]: r for r in driver_errors}
        self.walking = found.select(["video_id", "path"])
        self.out = Outcomes()
        self.stage = ""
        self.keys = pa.array([], pa.string())
        self.matched: list[pa.ChunkedArray] = []
        self.next: list[pa.Table] = []

    def begin(self, stage: str) -> None:
        self.stage, self.matched, self.next = stage, [], []
        self.keys = row_keys(self.walking).combine_chunks()

    def add(self, rows: pa.Table) -> None:
        """Rows of this stage (each video's one row at most, over all batches)."""
        out = self.out
        rows = rows.select(["video_id", "path", "status", "error_type", "reason"])
        keys = row_keys(rows)
        here = pc.is_in(keys, value_set=self.keys)
        self.matched.append(keys.filter(here))
        rows = rows.filter(here)
        stopped = rows.filter(pc.not_equal(rows["status"], "ok"))
        for status, count in zip(*_counts(stopped["status"]), strict=True):
            out.states[status] += count
        for row in stopped.filter(pc.equal(stopped["status"], "error")).to_pylist():
            out.errors.append({"video_id": row["video_id"], "path": row["path"], "stage": self.stage,
                               "error_type": row["error_type"], "message": row["reason"]})
        filtered = stopped.filter(pc.equal(stopped["status"], "filtered"))["reason"]
        out.reasons.update(dict(zip(*_counts(filtered), strict=True)))
        self.next.append(rows.filter(pc.equal(rows["status"], "ok")).select(["video_id", "path"]))

    def end(self) -> None:
        """Videos of the walk this stage has no row for are short (or lost, when the driver saw them fail)."""
        out = self.out
        matched = pa.chunked_array([c for m in self.matched for c in m.chunks], pa.string())
        missing = self.walking.filter(pc.invert(pc.is_in(self.keys, value_set=matched)))
        for vid, path in zip(*missing.to_pydict().values(), strict=True):
            if vid in self.lost:
                row = self.lost[vid]
                out.errors.append({"video_id": vid, "path": path, "stage": row["stage"],
                                   "error_type": row["error_type"], "message": row["reason"]})
                out.states["error"] += 1
            else:
                out.short[vid] = (path, self.stage)
                out.states["short"] += 1
        self.walking = pa.concat_tables(self.next) if self.next else self.walking.slice(0, 0)
        self.matched, self.next = [], []

    def outcomes(self) -> Outcomes:
        """Where every input stands, once every stage has been stepped through."""
        self.out.states["ok"] += self.walking.num_rows
        self.walking = self.walking.slice(0, 0)
        return self.out


def _counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column) if len(column) else pa.array([], pa.struct([("values", pa.string()),
                                                                                  ("counts", pa.int64())]))
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
