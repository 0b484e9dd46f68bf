"""Live accounting of a run from its indexes alone: works while workers are still writing them.

Each stage is folded into a small `StageStats` before the next is, so the memory of `status` is a few stages' newest
rows (it reads `AHEAD` stages ahead while it folds one), and the driver's end of run a batch of rows, not the whole
run's.

Costs are measured against the speed of light: GPU-seconds per video and per masklet (a stage's busy time times
the GPU share of its actors), and for served stages requests/s and output tokens/s (from the replies' `usage`)
over the time the stage was working, the figure to compare with `vllm bench throughput` on the same GPU.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from annotator import storage
from annotator.outcomes import Walk
from annotator.rundir import RunDir, locate

COLUMNS = ["video_id", "path", "status", "error_type", "reason", "seconds", "busy", "node", "worker", "finished",
           "counters"]  # what the tables below read of an index row
AHEAD = 2  # stages a live `status` reads ahead of the one it folds
LISTED = 20  # errors (and skipped inputs) `status` names one by one; the rest are counted


@dataclass
class StageStats:
    """One stage's newest rows of the current input set, folded into the figures `status` and the manifest show."""

    stage: str
    gpus: float
    counts: Counter[str] = field(default_factory=Counter)  # by status
    busy: float = 0.0
    model: float = 0.0
    nodes: list[str] = field(default_factory=list)
    recent_ok: int = 0  # finished ok since this run invocation started
    counters: Counter[str] = field(default_factory=Counter)
    requests: int = 0  # over the recent rows (all rows when this invocation did none)
    tokens: int = 0
    span: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first LISTED error rows, by video id


@dataclass
class RunStats:
    stages: list[StageStats]
    driver_errors: list[dict[str, Any]]  # errors.parquet rows no index holds, of videos still unfinished


def _total(column: pa.ChunkedArray) -> float:
    return float(pc.sum(pc.fill_null(column, 0.0)).as_py() or 0.0) if len(column) else 0.0


class Span:
    """Seconds a stage was working: from its first call's start to its last call's end, rows folded a batch at a
    time. A call's rows share their worker and end time, and their busy shares add up to its wall time. They are
    also contiguous (a worker appends a call's rows under one lock, compaction keeps each file's order), so only
    the call of a batch's last row can go on in the next batch: it is carried, every other call becomes two
    numbers. (One table, as `status` reads a live run, is one batch: any order.)"""

    def __init__(self) -> None:
        self.first, self.last = float("inf"), float("-inf")
        self.open: pa.Table | None = None  # the last call's (worker, finished, busy) so far

    def add(self, rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        part = rows.select(["worker", "finished", "busy"])
        worker, finished = part["worker"][-1], part["finished"][-1]
        if self.open is not None:
            part = pa.concat_tables([self.open, part])
        calls = part.group_by(["worker", "finished"]).aggregate([("busy", "sum")])
        calls = pa.table({"worker": calls["worker"], "finished": calls["finished"], "busy": calls["busy_sum"]})
        tail = pc.and_(pc.equal(calls["worker"], worker), pc.equal(calls["finished"], finished))
        self._fold(calls.filter(pc.invert(tail)))
        self.open = calls.filter(tail)

    def _fold(self, calls: pa.Table) -> None:
        if calls.num_rows:
            starts = pc.subtract(calls["finished"], pc.fill_null(calls["busy"], 0.0))
            self.first = min(self.first, float(pc.min(starts).as_py()))
            self.last = max(self.last, float(pc.max(calls["finished"]).as_py()))

    def seconds(self) -> float:
        if self.open is not None:
            self._fold(self.open)
            self.open = None
        return self.last - self.first if self.last >= self.first else 0.0


def counter_sums(rows: pa.Table) -> Counter[str]:
    """Every counter summed over rows (their `counters` maps)."""
    if not rows.num_rows:
        return Counter()
    maps = rows["counters"].combine_chunks()
    flat = pa.table({"key": maps.keys, "value": maps.items})
    return Counter({r["key"]: r["value_sum"] for r in flat.group_by("key").aggregate([("value", "sum")]).to_pylist()})


def counter(rows: pa.Table, key: str) -> int:
    """One counter summed over rows."""
    if not rows.num_rows:
        return 0
    return int(pc.sum(pc.fill_null(pc.map_lookup(rows["counters"], key, "first"), 0)).as_py() or 0)


class StageFold:
    """Folds a stage's rows into its `StageStats`, a batch at a time (sums, sets and per-call spans only)."""

    def __init__(self, entry: dict[str, Any], started: float) -> None:
        self.out = StageStats(entry["stage"], float(entry.get("gpus") or 0.0))
        self.started = started
        self.served = {"recent": [0, 0], "all": [0, 0]}  # requests, output tokens
        self.spans = {"recent": Span(), "all": Span()}
        self.any_recent = False

    def add(self, rows: pa.Table) -> None:
        out, stage = self.out, self.out.stage
        if not rows.num_rows:
            return
        by_status = pc.value_counts(rows["status"])
        out.counts.update(dict(zip(by_status.field("values").to_pylist(), by_status.field("counts").to_pylist(),
                                   strict=True)))
        out.busy += _total(rows["busy"])
        out.model += _total(rows["seconds"])
        out.nodes = sorted(set(out.nodes) | set(pc.unique(rows["node"]).to_pylist()))
        fresh = pc.greater_equal(rows["finished"], self.started)
        out.recent_ok += int(pc.sum(pc.and_(pc.equal(rows["status"], "ok"), fresh)).as_py() or 0)
        out.counters.update(counter_sums(rows))
        recent = rows if pc.all(fresh).as_py() else rows.filter(fresh)
        for name, part in (("recent", recent), ("all", rows)):
            self.served[name][0] += counter(part, f"{stage}.requests")
            self.served[name][1] += counter(part, f"{stage}.output_tokens")
            self.spans[name].add(part)
        self.any_recent = self.any_recent or recent.num_rows > 0
        failed = rows.filter(pc.equal(rows["status"], "error"))
        if failed.num_rows:  # only the first LISTED by id become rows: the rest are counted (`counts`)
            first = failed.select(["video_id", "path", "error_type", "reason"]).sort_by("video_id").slice(0, LISTED)
            out.errors = sorted(out.errors + [{"video_id": r["video_id"], "path": r["path"], "stage": stage,
                                               "error_type": r["error_type"], "message": r["reason"]}
                                              for r in first.to_pylist()], key=lambda r: r["video_id"])[:LISTED]

    def result(self) -> StageStats:
        """Requests, tokens and span over this run invocation's rows (all rows when it wrote none)."""
        name = "recent" if self.any_recent else "all"
        self.out.requests, self.out.tokens = self.served[name]
        self.out.span = self.spans[name].seconds()
        return self.out


def collect(rundir: RunDir, manifest: dict[str, Any], current: pa.Table | None = None, walk: Walk | None = None,
            compacted: bool = False) -> RunStats:
    """Every stage's newest rows with today's fingerprint, of the current input set (`RunDir.current_table`;
    every row before a run wrote one), read one stage at a time into its `StageStats`; `walk` walks the inputs'
    outcomes through the same read. `compacted` (the end of a run, right after a full compaction: one row per
    video, fingerprint and path): a stage's index is read a row group at a time, not held whole."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    current = rundir.current_table() if current is None else current
    driver = rundir.read_errors()
    if driver.num_rows and current.num_rows:
        driver = driver.filter(pc.is_valid(locate(driver, current)))
    stats = []
    entries = manifest["stages"]
    reads = _stage_reads(rundir, [(e["stage"], manifest["fingerprints"][e["stage"]]) for e in entries],
                         current if current.num_rows else None, compacted)
    for i, (entry, batches) in enumerate(zip(entries, reads, strict=True)):
        stage = entry["stage"]
        fold = StageFold(entry, started)
        if walk is not None:
            walk.begin(stage)
        for rows in batches:
            if walk is not None:
                walk.add(rows)
            fold.add(rows)
            settled = pc.equal(rows["status"], "ok" if i == len(entries) - 1 else "error")
            if driver.num_rows:  # a video errored in an index, or finished, since the driver's row
                driver = driver.filter(pc.invert(pc.is_in(driver["video_id"], rows.filter(settled)["video_id"])))
            del rows
        if walk is not None:
            walk.end()
        stats.append(fold.result())
        storage.release_memory()
    return RunStats(stats, driver.to_pylist())


def _stage_reads(rundir: RunDir, stages: list[tuple[str, str]], current: pa.Table | None, compacted: bool
                 ) -> Iterator[Iterable[pa.Table]]:
    """Each stage's current rows (`RunDir.current_batches`), in flow order. A live read (one table a stage) reads
    `AHEAD` stages ahead, in threads, while the caller folds this one: on an object store a stage's read is mostly
    waiting for replies (measured on the S3 test server: 7 stages read one after another were 0.7 s of a 10,000-video
    run's 0.8 s `status`). At the end of a run (`compacted`) a stage is read a batch at a time, one stage after
    another: its memory is one batch."""
    if compacted:
        for stage, fingerprint in stages:
            yield rundir.current_batches(stage, fingerprint, COLUMNS, current, compacted)
        return
    with ThreadPoolExecutor(max_workers=AHEAD + 1) as pool:
        todo = iter(stages)
        reads: deque[Future[list[pa.Table]]] = deque()
        for stage, fingerprint in todo:
            reads.append(pool.submit(lambda s=stage, f=fingerprint: list(
                rundir.current_batches(s, f, COLUMNS, current, compacted))))
            if len(reads) > AHEAD:
                yield reads.popleft().result()
        while reads:
            yield reads.popleft().result()


def stage_table(manifest: dict[str, Any], stats: RunStats) -> tuple[list[dict[str, Any]], str]:
    """Per stage (flow order): videos of the current input set done and errored with today's fingerprint, busy
    and model seconds, the nodes that ran it, videos/s since the run started; and a one-line summary with an ETA."""
    started = datetime.fromisoformat(manifest["started"]).timestamp()
    end = datetime.fromisoformat(manifest["finished"]).timestamp() if manifest.get("finished") else time.time()
    elapsed = max(1e-6, end - started)
    total = int((manifest.get("inputs") or {}).get("count", 0))
    rows = [{"stage": s.stage, "done": s.counts["ok"], "errors": s.counts["error"], "filtered": s.counts["filtered"],
             "pending": s.counts["pending"], "busy": s.busy, "model": s.model, "nodes": len(s.nodes),
             "node_ids": s.nodes, "rate": s.recent_ok / elapsed}  # this invocation's rate
            for s in stats.stages]
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


def summed_counters(stats: RunStats) -> dict[str, int]:
    """Every counter summed over every stage's rows, leaving out states (`stage._name`): the manifest's."""
    sums: Counter[str] = Counter()
    for s in stats.stages:
        sums.update({k: v for k, v in s.counters.items() if "._" not in k})
    return dict(sorted(sums.items()))


def cost_table(rundir: RunDir, stats: RunStats) -> list[dict[str, Any]]:
    """Per stage: its pool size now (Ray), GPU-seconds per video and per masklet, and for served stages requests/s
    and output tokens/s over the span this run invocation worked on it (the whole run's when it did none)."""
    size = {stage: n for name, n in rundir.read_pools().items() for stage in name.split("+")}
    masklets = sum(s.counters.get(f"{s.stage}.masklets", 0) for s in stats.stages)
    out = []
    for s in stats.stages:
        gpu_s = s.busy * s.gpus
        rate = s.span > 0 and s.requests > 0  # a served stage that worked
        out.append({
            "stage": s.stage, "pool": size.get(s.stage),
            "gpu_s_per_video": gpu_s / s.counts["ok"] if s.gpus and s.counts["ok"] else None,
            "gpu_s_per_masklet": gpu_s / masklets if s.gpus and masklets else None,
            "requests_per_s": s.requests / s.span if rate else None,
            "output_tokens_per_s": s.tokens / s.span if rate else None,
        })
    return out


def current_errors(stats: RunStats) -> tuple[list[dict[str, Any]], int]:
    """The first LISTED errors in force now, by video id, and how many there are: each stage's newest error rows
    of the current input set (so a run stopped midway shows its own), then what `errors.parquet` holds that no
    index can (a worker lost, a call past its deadline: the driver's rows from the last run that finished) for
    videos that have not errored or finished since."""
    named = sorted([e for s in stats.stages for e in s.errors] + stats.driver_errors, key=lambda r: r["video_id"])
    return named[:LISTED], sum(s.counts["error"] for s in stats.stages) + len(stats.driver_errors)
