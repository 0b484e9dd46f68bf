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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator.rundir import locate


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
    """Walks the videos `found` (video_id, path; ids unique) through the stages in flow order, each to its first
    row that is not `ok`: per stage `begin`, its newest rows in any number of batches (`add`), `end`.
    `driver_errors`: status rows of errors no index holds (a worker lost, a call past its deadline), for a video
    whose walk finds no row. What it holds is `found` and three flags per video (walking, seen at this stage, ok
    at this stage), never the stages' rows or keys of their own."""

    def __init__(self, found: pa.Table, driver_errors: list[dict[str, str]]) -> None:
        self.lost = {r["video_id"]: r for r in driver_errors}
        self.found = found.select(["video_id", "path"])
        self.walking = np.ones(found.num_rows, dtype=bool)
        self.seen = np.zeros(found.num_rows, dtype=bool)
        self.ok = np.zeros(found.num_rows, dtype=bool)
        self.out = Outcomes()
        self.stage = ""

    def begin(self, stage: str) -> None:
        self.stage = stage
        self.seen[:] = False
        self.ok[:] = False

    def add(self, rows: pa.Table) -> None:
        """Rows of this stage (each video's one row at most, over all batches), with their positions in `found`
        (`_row`, as `RunDir.current_batches` gives them) or without (then located here)."""
        out = self.out
        at = rows["_row"] if "_row" in rows.column_names else locate(rows, self.found)
        at = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        here = np.zeros(len(at), dtype=bool)
        known = at >= 0
        here[known] = self.walking[at[known]]
        if not here.all():
            rows, at = rows.filter(pa.array(here)), at[here]
        status = rows["status"]
        self.seen[at] = True
        self.ok[at[pc.equal(status, "ok").to_numpy(zero_copy_only=False)]] = True
        stopped = rows.filter(pc.not_equal(status, "ok"))
        for state, count in zip(*_counts(stopped["status"]), strict=True):
            out.states[state] += count
        for row in stopped.filter(pc.equal(stopped["status"], "error")).select(
                ["video_id", "path", "error_type", "reason"]).to_pylist():
            out.errors.append({"video_id": row["video_id"], "path": row["path"], "stage": self.stage,
                               "error_type": row["error_type"], "message": row["reason"]})
        filtered = stopped.filter(pc.equal(stopped["status"], "filtered"))["reason"]
        out.reasons.update(dict(zip(*_counts(filtered), strict=True)))

    def end(self) -> None:
        """Videos of the walk this stage has no row for are short (or lost, when the driver saw them fail)."""
        out = self.out
        missing = self.found.take(pa.array(np.flatnonzero(self.walking & ~self.seen)))
        for vid, path in zip(*missing.to_pydict().values(), strict=True):
            if vid in self.lost:
                row = self.lost[vid]
                out.errors.append({"video_id": vid, "path": path, "stage": row["stage"],
                                   "error_type": row["error_type"], "message": row["reason"]})
                out.states["error"] += 1
            else:
                out.short[vid] = (path, self.stage)
                out.states["short"] += 1
        self.walking &= self.ok

    def outcomes(self) -> Outcomes:
        """Where every input stands, once every stage has been stepped through."""
        self.out.states["ok"] += int(self.walking.sum())
        self.walking[:] = False
        return self.out


def _counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column) if len(column) else pa.array([], pa.struct([("values", pa.string()),
                                                                                  ("counts", pa.int64())]))
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
