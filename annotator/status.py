"""Live accounting of a run from its indexes alone: works while workers are still writing them."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from annotator.rundir import RunDir


def stage_table(rundir: RunDir, manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Per stage (flow order): videos of the current input set done and errored with today's fingerprint, busy
    and model seconds, the nodes that ran it, videos/s since the run started; and a one-line summary with an ETA."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    end = datetime.fromisoformat(manifest["finished"]).timestamp() if manifest.get("finished") else time.time()
    elapsed = max(1e-6, end - started)
    total = int((manifest.get("inputs") or {}).get("count", 0))
    current = rundir.current_inputs()
    rows = []
    for entry in manifest["stages"]:
        stage = entry["stage"]
        latest = [r for r in rundir.latest(stage, manifest["fingerprints"][stage]).values()
                  if not current or (r["video_id"], r["path"]) in current]  # this input set only, as the export
        done = [r for r in latest if r["status"] == "ok"]
        recent = [r for r in done if r["finished"] >= started]  # this invocation's work, for the rate
        rows.append({
            "stage": stage, "done": len(done), "errors": sum(1 for r in latest if r["status"] == "error"),
            "filtered": sum(1 for r in latest if r["status"] == "filtered"),
            "pending": sum(1 for r in latest if r["status"] == "pending"),
            "busy": sum(r["busy"] or 0.0 for r in latest), "model": sum(r["seconds"] or 0.0 for r in latest),
            "nodes": len({r["node"] for r in latest}), "node_ids": sorted({r["node"] for r in latest}),
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
