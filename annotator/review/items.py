"""What the review server reads from a run directory: the queue of pending items and each item as the gate saw
it, with the decisions in force applied (so a reviewer sees their own edits). Items are found by id only."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import OrderedDict
from typing import Any

import pyarrow.compute as pc

from annotator.records import VideoItem
from annotator.review import apply as decisions
from annotator.review.store import Decision, DecisionStore, Leases
from annotator.rundir import RunDir

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
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._queue: list[dict[str, Any]] = []
        self._read_at = 0.0
        self._items: OrderedDict[str, VideoItem] = OrderedDict()

    def refresh(self, max_age_s: float = 5.0) -> None:
        """Re-read the indexes (a run may have released or added items) at most every `max_age_s`."""
        with self._lock:
            if time.time() - self._read_at < max_age_s:
                return
            current = self.run.current_inputs()
            progress, _ = self.run.settled([(s, self.fingerprints[s]) for s in self.stages[:-1]])
            gate = self.run.latest(GATE, self.fingerprints[GATE])
            rows, queue = {}, []
            for vid, row in gate.items():
                before = progress.get(vid, [])
                if (current and (vid, row["path"]) not in current) or len(before) != len(self.stages) - 1:
                    continue
                rows[vid] = [*before, row]
                if row["status"] == "pending":
                    queue.append({"video_id": vid, "path": row["path"]})
            priorities = self._priorities([rows[q["video_id"]][-1] for q in queue])
            for q in queue:
                q["priority"] = priorities.get(q["video_id"], 0.0)
            self._rows, self._read_at = rows, time.time()
            self._queue = sorted(queue, key=lambda q: (q["priority"], q["video_id"]))
            self._items.clear()

    def _priorities(self, rows: list[dict[str, Any]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for shard in {r["shard"] for r in rows if r["shard"]}:
            table = self.run.shard(GATE, shard).select(["video_id", "review_priority"])
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
        return sorted(vid for vid, d in status.items() if d.action != "policy" and vid in self._rows)

    def check_id(self, video_id: str) -> str:
        if not ID.match(video_id):
            raise ValueError(f"not an item id: {video_id[:80]!r}")
        self.refresh()
        if video_id not in self._rows:
            self.refresh(max_age_s=0.0)
            if video_id not in self._rows:
                raise UnknownItem(video_id)
        return video_id

    def base(self, video_id: str) -> VideoItem:
        """The item as the gate received it (before any decision)."""
        self.check_id(video_id)
        with self._lock:
            item = self._items.get(video_id)
            if item is None:
                rows = self._rows[video_id]
                item = self.run.load_item(video_id, rows[-1]["path"], [
                    (r["stage"], self.outputs[r["stage"]], r["shard"]) for r in rows[:-1]])
                item = self._gate_input(item, rows[-1])
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
