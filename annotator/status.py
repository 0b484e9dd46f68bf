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

from annotator.rundir import RunDir

Latest = dict[str, list[dict[str, Any]]]  # stage -> its latest index row per video, today's fingerprint


def latest_rows(rundir: RunDir, manifest: dict[str, Any]) -> Latest:
    """Every stage's latest rows, read once for the tables below (each index read is a listing and its parts)."""
    return {e["stage"]: list(rundir.latest(e["stage"], manifest["fingerprints"][e["stage"]]).values())
            for e in manifest["stages"]}


def stage_table(rundir: RunDir, manifest: dict[str, Any], latest: Latest | None = None,
                current: set[tuple[str, str]] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Per stage (flow order): videos of the current input set done and errored with today's fingerprint, busy
    and model seconds, the nodes that ran it, videos/s since the run started; and a one-line summary with an ETA.
    `latest`, `current`: `latest_rows` and `RunDir.current_inputs()`, when the caller has them."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    end = datetime.fromisoformat(manifest["finished"]).timestamp() if manifest.get("finished") else time.time()
    elapsed = max(1e-6, end - started)
    total = int((manifest.get("inputs") or {}).get("count", 0))
    current = rundir.current_inputs() if current is None else current
    every = latest_rows(rundir, manifest) if latest is None else latest
    rows = []
    for entry in manifest["stages"]:
        stage = entry["stage"]
        kept = [r for r in every[stage]  # this input set only, as the export
                if not current or (r["video_id"], r["path"]) in current]
        done = [r for r in kept if r["status"] == "ok"]
        recent = [r for r in done if r["finished"] >= started]  # this invocation's work, for the rate
        rows.append({
            "stage": stage, "done": len(done), "errors": sum(1 for r in kept if r["status"] == "error"),
            "filtered": sum(1 for r in kept if r["status"] == "filtered"),
            "pending": sum(1 for r in kept if r["status"] == "pending"),
            "busy": sum(r["busy"] or 0.0 for r in kept), "model": sum(r["seconds"] or 0.0 for r in kept),
            "nodes": len({r["node"] for r in kept}), "node_ids": sorted({r["node"] for r in kept}),
            "rate": len(recent) / elapsed,
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


def _span(rows: list[dict[str, Any]]) -> float:
    """Seconds the stage was working: from its first batch's start to its last batch's end (a batch's rows share
    their worker and end time; their busy shares add up to its wall time)."""
    batches: dict[tuple[str, float], float] = defaultdict(float)
    for r in rows:
        batches[(r["worker"], r["finished"])] += r["busy"] or 0.0
    if not batches:
        return 0.0
    return max(end for _, end in batches) - min(end - busy for (_, end), busy in batches.items())


def cost_table(rundir: RunDir, manifest: dict[str, Any], latest: Latest | None = None) -> list[dict[str, Any]]:
    """Per stage: its pool size now (Ray), GPU-seconds per video and per masklet, and for served stages requests/s
    and output tokens/s over the span this run invocation worked on it (the whole run's when it did none).
    `latest`: `latest_rows`, when the caller has them."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    pools = rundir.read_pools()
    size = {stage: n for name, n in pools.items() for stage in name.split("+")}
    latest = latest_rows(rundir, manifest) if latest is None else latest
    masklets = sum(sum(dict(r["counters"] or []).get(f"{stage}.masklets", 0) for r in rows)
                   for stage, rows in latest.items())
    out = []
    for entry in manifest["stages"]:
        stage, rows = entry["stage"], latest[entry["stage"]]
        done = [r for r in rows if r["status"] == "ok"]
        gpu_s = sum(r["busy"] or 0.0 for r in rows) * float(entry.get("gpus") or 0.0)
        recent = [r for r in rows if r["finished"] >= started] or rows
        counters: dict[str, int] = defaultdict(int)
        for r in recent:
            for key, value in r["counters"] or []:
                counters[key] += value
        span = _span(recent)
        rate = span > 0 and f"{stage}.requests" in counters  # a served stage that worked
        out.append({
            "stage": stage, "pool": size.get(stage),
            "gpu_s_per_video": gpu_s / len(done) if entry.get("gpus") and done else None,
            "gpu_s_per_masklet": gpu_s / masklets if entry.get("gpus") and masklets else None,
            "requests_per_s": counters[f"{stage}.requests"] / span if rate else None,
            "output_tokens_per_s": counters[f"{stage}.output_tokens"] / span if rate else None,
        })
    return out


def current_errors(rundir: RunDir, manifest: dict[str, Any], latest: Latest,
                   current: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The errors in force now: each stage's latest error rows for the current input set (`current`, as
    `RunDir.current_inputs()` gives it; so a run stopped midway shows its own), then what `errors.parquet` holds
    that no index can (a worker lost, a call past its deadline: the driver's rows from the last run that finished)
    for videos that have not finished since."""
    out: list[dict[str, Any]] = []
    for entry in manifest["stages"]:
        out += [{"video_id": r["video_id"], "path": r["path"], "stage": entry["stage"],
                 "error_type": r["error_type"], "message": r["reason"]}
                for r in latest[entry["stage"]] if r["status"] == "error"
                and (not current or (r["video_id"], r["path"]) in current)]
    settled = {r["video_id"] for r in out}
    last = manifest["stages"][-1]["stage"] if manifest["stages"] else ""
    settled |= {r["video_id"] for r in latest.get(last, []) if r["status"] == "ok"}
    out += [r for r in rundir.read_errors().to_pylist() if r["video_id"] not in settled
            and (not current or (r["video_id"], r["path"]) in current)]
    return sorted(out, key=lambda r: r["video_id"])
