"""What the review server reads from a run directory: the queue of pending items and each item as the gate saw
it, with the decisions in force applied (so a reviewer sees their own edits). Items are found by id only."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from annotator.records import VideoItem
from annotator.review import apply as decisions
from annotator.review.store import Decision, DecisionStore, Leases
from annotator.rundir import RunDir, locate

GATE = "review_gate"
ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class UnknownItem(LookupError):
    """No pending or reviewed item of this run has that id."""


class ReviewRun:
    def __init__(self, run_dir: str) -> None:
        self.run = RunDir(run_dir)
        self.manifest = self.run.read_manifest()
        names = [s["stage"] for s in self.manifest["stages"]]
        if GATE not in names:
            raise ValueError(f"{run_dir}: the pipeline has no review_gate stage, so nothing waits for review")
        self.stages = names[: names.index(GATE) + 1]
        self.outputs = {s["stage"]: tuple(s["outputs"]) for s in self.manifest["stages"]}
        self.fingerprints = self.manifest["fingerprints"]
        self.store = DecisionStore(self.run.root)
        self.leases = Leases()
        self._lock = threading.Lock()
        self._rows: pa.Table = pa.table({"video_id": pa.array([], pa.string())})
        self._queue: list[dict[str, Any]] = []
        self._read_at = 0.0
        self._items: OrderedDict[str, VideoItem] = OrderedDict()

    def refresh(self, max_age_s: float = 5.0) -> None:
        """Re-read the indexes (a run may have released or added items) at most every `max_age_s`. The items are
        kept as one Arrow table (gate row, then a shard column per stage before it), never a row per video in
        Python: the server re-reads every few seconds, and a run may hold a million videos."""
        with self._lock:
            if time.time() - self._read_at < max_age_s:
                return
            columns = ["video_id", "path", "status", "shard"]
            current = self.run.current_table()
            items = self.run.current_rows(GATE, self.fingerprints[GATE], columns,
                                          current if current.num_rows else None).select(columns)
            for i, stage in enumerate(self.stages[:-1]):  # every stage before the gate finished ok
                rows = self.run.newest_rows(stage, self.fingerprints[stage], columns)
                at = locate(items, rows)
                ok = pc.fill_null(pc.equal(pc.take(rows["status"], at), "ok"), False)
                items = items.filter(ok).append_column(f"s{i}", pc.take(rows["shard"], at).filter(ok))
                del rows
            pending = items.filter(pc.equal(items["status"], "pending")).select(["video_id", "path", "shard"])
            queue = pending.select(["video_id", "path"]).to_pylist()
            priorities = self._priorities(pending)
            for q in queue:
                q["priority"] = priorities.get(q["video_id"], 0.0)
            self._rows, self._read_at = items.combine_chunks(), time.time()
            self._queue = sorted(queue, key=lambda q: (q["priority"], q["video_id"]))
            self._items.clear()

    def _row(self, video_id: str) -> dict[str, Any] | None:
        """The item's gate row and earlier shards (`s0`, `s1`, ...), or None when the run holds no such item."""
        at = pc.index(self._rows["video_id"], video_id).as_py()
        return None if at < 0 else self._rows.slice(at, 1).to_pylist()[0]

    def _priorities(self, pending: pa.Table) -> dict[str, float]:
        out: dict[str, float] = {}
        for shard in pc.unique(pending["shard"]).to_pylist():
            if shard:
                table = self.run.shard(GATE, shard).select(["video_id", "review_priority"])
                table = table.filter(pc.is_in(table["video_id"], pending["video_id"]))
                out.update({r["video_id"]: r["review_priority"] or 0.0 for r in table.to_pylist()})
        return out

    def queue(self) -> list[dict[str, Any]]:
        """Pending items, most doubtful first, each with whether a person has decided it (released next run)."""
        self.refresh()
        decided = {d.item for d in self.store.history() if d.field == "status" and d.action != "policy"}
        leases = self.leases.held()
        return [dict(q, decided=q["video_id"] in decided, lease=leases.get(q["video_id"])) for q in self._queue]

    def decided(self) -> list[str]:
        """Items of the current inputs whose status in force was set by a person (accept or reject), by id."""
        self.refresh(max_age_s=0.0)
        status: dict[str, Decision] = {}
        for d in self.store.history():
            if d.field == "status":
                status[d.item] = d
        people = pa.array(sorted(vid for vid, d in status.items() if d.action != "policy"), pa.string())
        return people.filter(pc.is_in(people, self._rows["video_id"])).to_pylist()

    def check_id(self, video_id: str) -> str:
        if not ID.match(video_id):
            raise ValueError(f"not an item id: {video_id[:80]!r}")
        self.refresh()
        if self._row(video_id) is None:
            self.refresh(max_age_s=0.0)
            if self._row(video_id) is None:
                raise UnknownItem(video_id)
        return video_id

    def base(self, video_id: str) -> VideoItem:
        """The item as the gate received it (before any decision)."""
        self.check_id(video_id)
        with self._lock:
            item = self._items.get(video_id)
            if item is None:
                row = self._row(video_id)
                if row is None:  # gone with a refresh since check_id
                    raise UnknownItem(video_id)
                item = self.run.load_item(video_id, row["path"], [
                    (stage, self.outputs[stage], row[f"s{i}"]) for i, stage in enumerate(self.stages[:-1])])
                item = self._gate_input(item, row)
                self._items[video_id] = item
                while len(self._items) > 64:
                    self._items.popitem(last=False)
            return copy.deepcopy(item)

    def _gate_input(self, item: VideoItem, gate_row: dict[str, Any]) -> VideoItem:
        """A pending gate row's shard holds the item as it entered the gate; a released one may hold decisions
        already applied, so that item is rebuilt from the stages before the gate and keeps only the gate's
        review priority."""
        if gate_row["shard"]:
            table = self.run.shard(GATE, gate_row["shard"])
            rows = table.filter(pc.equal(table["video_id"], item.video_id)).to_pylist()
            if rows:
                from annotator import checkpoint

                outputs = self.outputs[GATE] if gate_row["status"] == "pending" else ("review_priority",)
                checkpoint.apply(item, rows[-1], outputs)
        return item

    def current(self, video_id: str, extra: Decision | None = None) -> VideoItem:
        """The item with the decisions in force (and `extra`, as the newest) applied: a DecisionError if they do
        not apply."""
        item = self.base(video_id)
        force = {(d.object, d.field): d for d in self.store.latest(video_id)}
        if extra is not None:
            force[(extra.object, extra.field)] = Decision(**{**vars(extra), "id": 2**62})
        decisions.apply(item, list(force.values()))
        return item
