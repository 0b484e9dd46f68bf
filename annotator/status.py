"""Live accounting of a run from its indexes alone: works while workers are still writing them.

Costs are measured against the speed of light: GPU-seconds per video and per masklet (a stage's busy time times
the GPU share of its actors), and for served stages requests/s and output tokens/s (from the replies' `usage`)
over the time the stage was working, the figure to compare with `vllm bench throughput` on the same GPU.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from annotator.rundir import RunDir, row_keys

Latest = dict[str, pa.Table]  # stage -> each video's newest index row, today's fingerprint, current inputs


def latest_rows(rundir: RunDir, manifest: dict[str, Any], current: pa.Table | None = None) -> Latest:
    """Every stage's newest rows with today's fingerprint, of the current input set (`RunDir.current_table`;
    every row before a run wrote one), read once for the tables below. Arrow tables: no Python row per video."""
    keys = row_keys(rundir.current_table() if current is None else current)
    out = {}
    for entry in manifest["stages"]:
        rows = rundir.newest_rows(entry["stage"], manifest["fingerprints"][entry["stage"]])
        out[entry["stage"]] = rows.filter(pc.is_in(row_keys(rows), keys)) if len(keys) else rows
    return out


def _count(rows: pa.Table, status: str) -> int:
    return int(pc.sum(pc.equal(rows["status"], status)).as_py() or 0)


def _total(column: pa.ChunkedArray) -> float:
    return float(pc.sum(pc.fill_null(column, 0.0)).as_py() or 0.0) if len(column) else 0.0


def stage_table(rundir: RunDir, manifest: dict[str, Any], latest: Latest | None = None
                ) -> tuple[list[dict[str, Any]], str]:
    """Per stage (flow order): videos of the current input set done and errored with today's fingerprint, busy
    and model seconds, the nodes that ran it, videos/s since the run started; and a one-line summary with an ETA.
    `latest`: `latest_rows`, when the caller has them."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    end = datetime.fromisoformat(manifest["finished"]).timestamp() if manifest.get("finished") else time.time()
    elapsed = max(1e-6, end - started)
    total = int((manifest.get("inputs") or {}).get("count", 0))
    every = latest_rows(rundir, manifest) if latest is None else latest
    rows = []
    for entry in manifest["stages"]:
        kept = every[entry["stage"]]
        recent = kept.filter(pc.and_(pc.equal(kept["status"], "ok"), pc.greater_equal(kept["finished"], started)))
        nodes = sorted(pc.unique(kept["node"]).to_pylist()) if kept.num_rows else []
        rows.append({
            "stage": entry["stage"], "done": _count(kept, "ok"), "errors": _count(kept, "error"),
            "filtered": _count(kept, "filtered"), "pending": _count(kept, "pending"),
            "busy": _total(kept["busy"]), "model": _total(kept["seconds"]),
            "nodes": len(nodes), "node_ids": nodes, "rate": recent.num_rows / elapsed,  # this invocation's rate
        })
    finished = rows[-1]["done"] if rows else 0
    rate = rows[-1]["rate"] if rows else 0.0
    left = max(0, total - finished - sum(r["errors"] + r["filtered"] + r["pending"] for r in rows))
    if manifest.get("finished"):
        eta = "finished"
    elif rate > 0:
        eta = f"ETA {left / rate:.0f}s"
    else:
        eta = "ETA unknown (no video finished yet)"
    return rows, f"{finished}/{total} videos finished, {eta}"


def _span(rows: pa.Table) -> float:
    """Seconds the stage was working: from its first batch's start to its last batch's end (a batch's rows share
    their worker and end time; their busy shares add up to its wall time)."""
    if not rows.num_rows:
        return 0.0
    batches = rows.select(["worker", "finished", "busy"]).group_by(["worker", "finished"]).aggregate(
        [("busy", "sum")])
    ends = batches["finished"]
    starts = pc.subtract(ends, pc.fill_null(batches["busy_sum"], 0.0))
    return float(pc.max(ends).as_py()) - float(pc.min(starts).as_py())


def counter(rows: pa.Table, key: str) -> int:
    """One counter summed over rows (their `counters` maps)."""
    if not rows.num_rows:
        return 0
    return int(pc.sum(pc.fill_null(pc.map_lookup(rows["counters"], key, "first"), 0)).as_py() or 0)


def summed_counters(latest: Latest) -> dict[str, int]:
    """Every counter summed over every stage's rows, leaving out states (`stage._name`): the manifest's."""
    sums: dict[str, int] = defaultdict(int)
    for rows in latest.values():
        if not rows.num_rows:
            continue
        maps = rows["counters"].combine_chunks()
        flat = pa.table({"key": maps.keys, "value": maps.items})
        for row in flat.group_by("key").aggregate([("value", "sum")]).to_pylist():
            if "._" not in row["key"]:
                sums[row["key"]] += row["value_sum"]
    return dict(sorted(sums.items()))


def cost_table(rundir: RunDir, manifest: dict[str, Any], latest: Latest | None = None) -> list[dict[str, Any]]:
    """Per stage: its pool size now (Ray), GPU-seconds per video and per masklet, and for served stages requests/s
    and output tokens/s over the span this run invocation worked on it (the whole run's when it did none).
    `latest`: `latest_rows`, when the caller has them."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    pools = rundir.read_pools()
    size = {stage: n for name, n in pools.items() for stage in name.split("+")}
    latest = latest_rows(rundir, manifest) if latest is None else latest
    masklets = sum(counter(rows, f"{stage}.masklets") for stage, rows in latest.items())
    out = []
    for entry in manifest["stages"]:
        stage, rows = entry["stage"], latest[entry["stage"]]
        done = _count(rows, "ok")
        gpu_s = _total(rows["busy"]) * float(entry.get("gpus") or 0.0)
        recent = rows.filter(pc.greater_equal(rows["finished"], started)) if rows.num_rows else rows
        recent = recent if recent.num_rows else rows
        requests, tokens = counter(recent, f"{stage}.requests"), counter(recent, f"{stage}.output_tokens")
        span = _span(recent)
        rate = span > 0 and requests > 0  # a served stage that worked
        out.append({
            "stage": stage, "pool": size.get(stage),
            "gpu_s_per_video": gpu_s / done if entry.get("gpus") and done else None,
            "gpu_s_per_masklet": gpu_s / masklets if entry.get("gpus") and masklets else None,
            "requests_per_s": requests / span if rate else None,
            "output_tokens_per_s": tokens / span if rate else None,
        })
    return out


def current_errors(rundir: RunDir, manifest: dict[str, Any], latest: Latest) -> list[dict[str, Any]]:
    """The errors in force now: each stage's newest error rows of the current input set (`latest`, as
    `latest_rows` gives it; so a run stopped midway shows its own), then what `errors.parquet` holds that no
    index can (a worker lost, a call past its deadline: the driver's rows from the last run that finished) for
    videos of the current input set that have not finished since."""
    out: list[dict[str, Any]] = []
    settled = []
    for entry in manifest["stages"]:
        rows = latest[entry["stage"]]
        errors = rows.filter(pc.equal(rows["status"], "error"))
        settled.append(errors["video_id"])
        out += [{"video_id": r["video_id"], "path": r["path"], "stage": entry["stage"],
                 "error_type": r["error_type"], "message": r["reason"]} for r in errors.to_pylist()]
    last = latest[manifest["stages"][-1]["stage"]] if manifest["stages"] else None
    if last is not None:
        settled.append(last.filter(pc.equal(last["status"], "ok"))["video_id"])
    driver = rundir.read_errors()
    if driver.num_rows:
        done = pa.concat_arrays([c.combine_chunks() for c in settled]) if settled else pa.array([], pa.string())
        driver = driver.filter(pc.invert(pc.is_in(driver["video_id"], done)))
        current = rundir.current_table()
        if current.num_rows:
            driver = driver.filter(pc.is_in(row_keys(driver), row_keys(current)))
        out += driver.to_pylist()
    return sorted(out, key=lambda r: r["video_id"])
