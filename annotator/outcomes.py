"""Where each video of the run's input set stands, read from the indexes: what the summary, the manifest's counts
and `errors.parquet` report, and which videos are short of a checkpoint.

Workers flush their checkpoints in buffers, so a worker lost mid-run takes its unflushed rows with it while the
videos went on downstream: such a video is *short* (a stage on its way has no row), though the driver saw it
pass. The run redoes short videos at once (`Pipeline.run`), and the counts come from here, not from the status
rows the driver tallied, so a video is never counted twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

Rows = dict[str, dict[str, dict[str, Any]]]  # stage -> video_id -> its latest row with today's fingerprint


@dataclass
class Outcomes:
    states: Counter[str] = field(default_factory=Counter)  # ok | error | filtered | pending | short
    reasons: Counter[str] = field(default_factory=Counter)  # filter reasons
    errors: list[dict[str, str]] = field(default_factory=list)  # errors.parquet rows
    short: dict[str, str] = field(default_factory=dict)  # video_id -> the stage whose row it lacks

    def error_rows(self, paths: dict[str, str]) -> list[dict[str, str]]:
        """errors.parquet: the errors, and a row for each video still short (after the run's repair passes), so
        no input goes unaccounted for."""
        short = [{"video_id": vid, "path": paths[vid], "stage": stage, "error_type": "CheckpointLost",
                  "message": "its checkpoint went with a lost worker and redoing it did not finish; run again"}
                 for vid, stage in self.short.items()]
        return sorted(self.errors + short, key=lambda r: r["video_id"])


def outcomes(latest: Rows, stages: list[str], found: list[tuple[str, str]],
             driver_errors: list[dict[str, str]]) -> Outcomes:
    """Walk each video's stages in flow order to its first row that is not `ok`. `driver_errors`: status rows
    of errors no index holds (a worker lost, a call past its deadline) for a video whose walk finds no row."""
    lost = {r["video_id"]: r for r in driver_errors}
    out = Outcomes()
    for vid, path in found:
        state = "ok"
        for stage in stages:
            row = latest[stage].get(vid)
            if row is None or row["path"] != path:
                if vid in lost:
                    state, row = "error", lost[vid]
                    out.errors.append({"video_id": vid, "path": path, "stage": row["stage"],
                                       "error_type": row["error_type"], "message": row["reason"]})
                else:
                    state = "short"
                    out.short[vid] = stage
                break
            if row["status"] == "ok":
                continue
            state = row["status"]
            if state == "error":
                out.errors.append({"video_id": vid, "path": path, "stage": stage, "error_type": row["error_type"],
                                   "message": row["reason"]})
            elif state == "filtered":
                out.reasons[row["reason"]] += 1
            break
        out.states[state] += 1
    return out
