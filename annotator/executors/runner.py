"""What every executor does around a stage: skip finished work, set up lazily, isolate errors, checkpoint.

Executors differ only in *where* a `StageRunner` is called (in-process, or inside a Ray actor). The runner
buffers what its batches produce and flushes it every `flush_rows` videos or `flush_s` seconds (a timer thread,
so an idle worker flushes too) and when it closes: one data shard (what the stage added, typed columns), the
final stage's export parts, and last the index rows naming them, with each item's status, timing, node,
counters and its clock-free order `(generation, worker, seq)`. A stage that handles one video per call thus
writes files per hundred videos, not per video; a worker killed loses at most its one unflushed buffer, which the
next run (or the same run's repair pass) redoes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from annotator import checkpoint, storage
from annotator.records import Hold, VideoItem
from annotator.rundir import RunDir, new_worker_id, shard_name
from annotator.stage import Stage, error_from


@dataclass
class ExportSpec:
    """What the final stage's runner needs to write export parts as videos finish."""

    pipeline: str
    run_id: str
    fingerprints: dict[str, str]


@dataclass
class StageTask:
    """Everything a worker needs to run one stage: picklable, no models loaded."""

    stage: Stage
    fingerprint: str
    run_root: str
    concurrency: int
    batch_size: int
    cpus: float
    gpus: float
    custom: dict[str, float] = field(default_factory=dict)  # Ray custom resources (pin to node types)
    export: ExportSpec | None = None  # set on the last stage
    call_timeout_s: float = 1800.0  # Ray: a call past it has hung; its actor is restarted and its videos retried
    scale: tuple[int, int | None] | None = None  # Ray: autoscaled between (min, max); None: `concurrency` actors
    flush_rows: int = 100  # checkpoints are written every this many videos,
    flush_s: float = 60.0  # or this often, and at close
    generation: int = 1  # the run's generation (one more per start of the run): the first key of the row order


@dataclass
class WorkRef:
    """What the driver hands out per video: its id, path, and the shards of the stages it already finished."""

    video_id: str
    path: str
    done: list[tuple[str, str]] = field(default_factory=list)  # (stage, shard) in flow order

    def to_row(self) -> dict[str, str]:
        return {"video_id": self.video_id, "path": self.path, "done": json.dumps(self.done)}

    @staticmethod
    def from_row(row: dict[str, Any]) -> WorkRef:
        return WorkRef(str(row["video_id"]), str(row["path"]), [tuple(d) for d in json.loads(row["done"])])


STATUS_KEYS = ("video_id", "status", "stage", "error_type", "reason")


def status_row(item: VideoItem) -> dict[str, str]:
    """The one row per video the driver receives: id and state, nothing else."""
    if item.error is not None:
        return {"video_id": item.video_id, "status": "error", "stage": item.error.stage,
                "error_type": item.error.error_type, "reason": item.error.message}
    if item.hold is not None:
        return {"video_id": item.video_id, "status": item.hold.state, "stage": item.hold.stage, "error_type": "",
                "reason": item.hold.reason}
    return {"video_id": item.video_id, "status": "ok", "stage": item.stages_done[-1] if item.stages_done else "",
            "error_type": "", "reason": ""}


SHORT = "short"  # the state of a video whose checkpoints could not be read where it re-entered the stream


def load_items(rundir: RunDir, refs: list[WorkRef], outputs: dict[str, tuple[str, ...]],
               restart: bool = True) -> list[VideoItem]:
    """Items for refs, rebuilt from their finished stages' shards (a worker-side step). A checkpoint that cannot
    be read (it went with a lost worker's unflushed buffer, or vanished): with `restart` (the caller runs the
    first stage) the video starts over; else it is held `short`, passes the later stages untouched, and the run
    redoes it from its index at the end (`Pipeline.run`)."""
    items = []
    for ref in refs:
        try:
            items.append(rundir.load_item(ref.video_id, ref.path, [(s, outputs[s], shard) for s, shard in ref.done]))
        except (OSError, KeyError):
            item = VideoItem(video_id=ref.video_id, path=ref.path)
            item.count("resume", {"reload_failures": 1})
            if not restart:
                item.hold = Hold(SHORT, ref.done[-1][0] if ref.done else "",
                                 "its checkpoints are not readable here; redone at the end of the run")
            items.append(item)
    return items


@dataclass
class _Buffer:
    """What a runner has not flushed yet: all of it goes into one shard, one export part per table, one index
    file, under the name chosen when the buffer opened (receipts name it before it is written)."""

    name: str
    opened: float
    data: list[Any] = field(default_factory=list)  # encoded shard tables
    exports: dict[str, list[Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


class StageRunner:
    def __init__(self, task: StageTask, node: str | None = None, clock: Any = time.monotonic) -> None:
        self.task = task
        self.stage = task.stage
        self.stage.bind(task.run_root)
        self.rundir = RunDir(task.run_root)
        self.node = node or socket.gethostname()
        self.worker = new_worker_id()
        self.seq = 0
        self.row_seq = 0
        self.shards: dict[str, str] = {}  # video id -> the shard this runner wrote it to (cleared by its caller)
        self.clock = clock
        self._ready = False
        self.setup_s = 0.0  # seconds spent loading its models, in all (each load is in the call that needed it)
        self._buffer: _Buffer | None = None
        self._lock = threading.Lock()  # the buffer, between calls and the timer thread
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        """A runner travels to workers before it has work (Ray Data pickles its callables): no buffer, no locks."""
        assert self._buffer is None, "a runner with unflushed checkpoints cannot be moved"
        return {k: v for k, v in vars(self).items() if k not in ("_lock", "_stop", "_timer")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state, _lock=threading.Lock(), _stop=threading.Event(), _timer=None)

    def _setup(self) -> None:
        if not self._ready:
            started = time.perf_counter()
            self.stage.setup()  # models load only when some item needs this stage
            self.setup_s += time.perf_counter() - started
            self._ready = True

    def __call__(self, items: list[VideoItem]) -> list[VideoItem]:
        name = self.stage.name
        todo = [it for it in items if it.state == "ok" and name not in it.stages_done]
        if not todo:
            return items
        started = time.perf_counter()
        try:
            self._setup()
            results = self.stage.process(todo)
        except Exception as exc:  # noqa: BLE001 - setup or a whole-batch failure: every item records it
            error = error_from(name, exc)
            for it in todo:
                it.error = error
            results = todo
        model_s = time.perf_counter() - started
        by_id = {it.video_id: it for it in results}
        todo_ids = {it.video_id for it in todo}
        out, answered = [], []
        for it in items:
            if it.video_id not in todo_ids:
                out.append(it)
                continue
            done = by_id.get(it.video_id)
            if done is None:  # a stage must answer for every item: never drop one silently
                it.error = error_from(name, RuntimeError("stage returned no result for this item"))
                done = it
            answered.append(done)
            out.append(done)
        self.checkpoint(answered, model_s, started)
        return out

    def checkpoint(self, answered: list[VideoItem], model_s: float, started: float) -> None:
        """Data, export tables and index rows of a batch into the buffer; flushed when it is full or old."""
        name = self.stage.name
        kept = [it for it in answered if it.error is None]  # ok, or held (filtered/pending) with what it got
        with self._lock:
            buffer = self._open()
            if kept:
                buffer.data.append(checkpoint.encode(kept, self.stage.outputs))
                ok = [it for it in kept if it.state == "ok"]
                if self.task.export is not None and ok:
                    self._export(ok, buffer)  # exports hold only ok items
            masklets = "tracks" in self.stage.outputs  # what GPU-seconds per masklet divide by (`status`)
            for it in kept:
                it.stages_done.append(name)
                self.shards[it.video_id] = buffer.name
                if masklets:
                    it.counters[f"{name}.masklets"] = len(it.tracks)
            finished = time.time()
            share = 1.0 / max(1, len(answered))
            busy = time.perf_counter() - started
            prefix = f"{name}."
            for it in answered:
                self.row_seq += 1
                buffer.rows.append({
                    "video_id": it.video_id, "path": it.path, "stage": name, "fingerprint": self.task.fingerprint,
                    "shard": buffer.name if it.error is None else "", "status": it.state,
                    "error_type": it.error.error_type if it.error else "",
                    "reason": it.error.message if it.error else it.hold.reason if it.hold else "",
                    "seconds": model_s * share, "busy": busy * share, "node": self.node, "worker": self.worker,
                    "finished": finished, "counters": {k: v for k, v in it.counters.items() if k.startswith(prefix)},
                    "generation": self.task.generation, "seq": self.row_seq,
                })
            if len(buffer.rows) >= self.task.flush_rows:
                self._flush_locked()

    def _open(self) -> _Buffer:
        if self._buffer is None:
            self.seq += 1
            self._buffer = _Buffer(shard_name(self.worker, self.seq), self.clock())
            if self._timer is None and self.task.flush_rows > 1:
                self._timer = threading.Thread(target=self._tick, name=f"flush-{self.stage.name}", daemon=True)
                self._timer.start()
        return self._buffer

    def _tick(self) -> None:
        """Flush a buffer older than `flush_s`, also while no call comes (an idle worker's rows reach the index)."""
        step = min(1.0, self.task.flush_s / 4)
        while not self._stop.wait(step):
            with self._lock:
                if self._buffer is not None and self.clock() - self._buffer.opened >= self.task.flush_s:
                    self._flush_locked()

    def flush(self) -> None:
        """Write what is buffered: data shard, export parts, then the index that makes them count."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        buffer, self._buffer = self._buffer, None
        if buffer is None or not buffer.rows:
            return
        name = self.stage.name
        if buffer.data:
            self.rundir.write_shard(name, buffer.name, pa.concat_tables(buffer.data, promote_options="default"))
        for table, parts in buffer.exports.items():
            storage.write_table(self.rundir.export_part(table, buffer.name),
                                pa.concat_tables(parts, promote_options="default"))
        self.rundir.write_index(name, buffer.name, buffer.rows)

    def _export(self, ok: list[VideoItem], buffer: _Buffer) -> None:
        from annotator.export.parquet import tables

        spec = self.task.export
        assert spec is not None
        for table, data in tables(ok, spec.pipeline, spec.run_id, spec.fingerprints).items():
            buffer.exports.setdefault(table, []).append(data)

    def close(self) -> None:
        """Flush, stop the timer, release the models."""
        self._stop.set()
        self.flush()
        if self._ready:
            self.stage.teardown()
            self._ready = False
