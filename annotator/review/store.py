"""Review decisions as append-only, immutable parts under `review/decisions/` of the run directory.

Each append writes one new part, named by its decision id and its writer, whole (a rename on a local disk or
shared filesystem, one PUT on an object store) and, on a local disk, fsynced before it is acknowledged: a
decision that was acknowledged survives its writer being killed. Nothing is rewritten or deleted, so the parts are
the audit trail; the latest decision per (item, object, field), by id, is in force. Ids grow by one per decision
(the writer takes the largest it has seen plus one); two writers that race to one id are ordered by writer name,
so every reader agrees. The review server is the one writer of people's decisions; the gate only reads.

Run directories from before this layout kept their decisions in `review/decisions.sqlite`: they are read from it
(read-only), and new decisions continue its ids.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from annotator import storage

# action -> the field it decides; the latest decision per (item, object, field) wins
FIELDS = {
    "accept": "status", "reject": "status", "policy": "status",
    "rename": "phrase", "drop": "present", "merge": "merge", "caption": "caption", "fix_mask": "masks",
}
ITEM_ACTIONS = {"accept", "reject", "policy", "caption"}  # about the whole item (object is None)
LEGACY = "decisions.sqlite"
READ_MAX_AGE_S = 5.0  # reads re-list the parts at most this often (a new store lists at once; its own appends
# are seen at once)


@dataclass
class Decision:
    item: str
    action: str
    reviewer: str
    object: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    time: float = 0.0
    id: int = 0
    writer: str = ""  # who wrote the part (orders two decisions that raced to one id)

    @property
    def field(self) -> str:
        return FIELDS[self.action]

    @property
    def order(self) -> tuple[int, str]:
        return self.id, self.writer


def decisions_dir(run_root: str) -> str:
    return storage.join(str(run_root), "review", "decisions")


class DecisionStore:
    """A run directory's decisions: appended as parts, read by listing once and fetching only parts not yet seen
    (parts never change, so what was read stays true). Thread-safe; one instance per process is enough."""

    def __init__(self, run_root: str, writer: str | None = None) -> None:
        self.root = str(run_root)
        self.folder = decisions_dir(self.root)
        self.writer = writer or uuid.uuid4().hex[:10]
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._all: list[Decision] = []
        self._by_item: dict[str, list[Decision]] = {}  # the gate asks per item, across a whole run's items
        self._add(self._legacy())
        self._read_at = float("-inf")

    def _legacy(self) -> list[Decision]:
        local = storage.local_path(self.root)
        path = None if local is None else local / "review" / LEGACY
        if path is None or not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT id, item, object, reviewer, time, action, payload, reason FROM decisions "
                                "ORDER BY id").fetchall()
        return [Decision(item=r[1], object=r[2], reviewer=r[3], time=r[4], action=r[5], payload=json.loads(r[6]),
                         reason=r[7], id=r[0], writer="") for r in rows]

    def _add(self, decisions: list[Decision]) -> None:
        """Keep both views in id order (parts mostly arrive in it, so the sorts are nearly free)."""
        if not decisions:
            return
        start = len(self._all)
        self._all.extend(decisions)
        if any(self._all[i - 1].order > self._all[i].order for i in range(max(1, start), len(self._all))):
            self._all.sort(key=lambda d: d.order)
        for d in decisions:
            mine = self._by_item.setdefault(d.item, [])
            mine.append(d)
            if len(mine) > 1 and mine[-2].order > d.order:
                mine.sort(key=lambda d: d.order)

    def refresh(self, max_age_s: float = 0.0) -> None:
        """Read the parts written since the last look (by any writer), at most every `max_age_s`."""
        with self._lock:
            if time.monotonic() - self._read_at < max_age_s:
                return
            new = [p for p in storage.list_files(self.folder, ".json") if storage.name(p) not in self._seen]
            if len(new) > 1:
                with ThreadPoolExecutor(max_workers=min(storage.READ_THREADS, len(new))) as pool:
                    texts = list(pool.map(storage.read_text, new))
            else:
                texts = [storage.read_text(p) for p in new]
            for path, text in zip(new, texts, strict=True):
                self._seen.add(storage.name(path))
                self._add([Decision(**row) for row in json.loads(text)])
            self._read_at = time.monotonic()

    def append(self, decision: Decision) -> int:
        """Store one decision; returns its id once the part holding it is durable (the acknowledgement)."""
        return self.append_many([decision])[0]

    def append_many(self, decisions: list[Decision]) -> list[int]:
        """Store decisions as one part (one write, all or none); their ids once it is durable."""
        for d in decisions:
            if d.action not in FIELDS:
                raise ValueError(f"unknown action {d.action!r}; one of {', '.join(FIELDS)}")
        self.refresh(max_age_s=1.0)  # other writers' ids, seen within a second
        with self._lock:
            first = (self._all[-1].id if self._all else 0) + 1
            stored = [Decision(**{**asdict(d), "id": first + i, "writer": self.writer, "time": d.time or time.time()})
                      for i, d in enumerate(decisions)]
            name = f"{first:012d}-{self.writer}.json"
            storage.write_bytes(storage.join(self.folder, name), json.dumps([asdict(d) for d in stored]).encode(),
                                durable=True)
            self._seen.add(name)
            self._add(stored)
        return [d.id for d in stored]

    def history(self, item: str | None = None, max_age_s: float = READ_MAX_AGE_S) -> list[Decision]:
        """Every decision (of one item), oldest first."""
        self.refresh(max_age_s)
        with self._lock:
            return list(self._all if item is None else self._by_item.get(item, []))

    def latest(self, item: str, max_age_s: float = READ_MAX_AGE_S) -> list[Decision]:
        """The decision in force per (object, field) of one item, oldest first."""
        force: dict[tuple[int | None, str], Decision] = {}
        for d in self.history(item, max_age_s):
            force[(d.object, d.field)] = d
        return sorted(force.values(), key=lambda d: d.order)

    def last_ids(self, max_age_s: float = READ_MAX_AGE_S) -> dict[str, int]:
        """item -> id of its newest decision: what a resumed run compares with what it applied."""
        return {d.item: d.id for d in self.history(max_age_s=max_age_s)}

    def count(self, max_age_s: float = READ_MAX_AGE_S) -> int:
        return len(self.history(max_age_s=max_age_s))


class Leases:
    """Which reviewer holds an item until when: working state of the one review server, kept in its memory
    (not decisions: a restarted server starts with none, and reviewers take their items again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, float]] = {}

    def lease(self, item: str, reviewer: str, seconds: float = 300.0) -> str:
        """Give (or renew) `item` to `reviewer` unless another reviewer holds a live lease; returns the holder."""
        now = time.time()
        with self._lock:
            holder = self._held.get(item)
            if holder is None or holder[0] == reviewer or holder[1] < now:
                self._held[item] = (reviewer, now + seconds)
                return reviewer
            return holder[0]

    def held(self) -> dict[str, str]:
        """item -> reviewer of the live leases."""
        now = time.time()
        with self._lock:
            return {item: who for item, (who, until) in self._held.items() if until >= now}

    def release(self, item: str, reviewer: str) -> None:
        with self._lock:
            if self._held.get(item, ("",))[0] == reviewer:
                del self._held[item]
