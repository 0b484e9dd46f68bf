"""Review decisions in SQLite (WAL): append-only rows, the latest per (item, object, field) wins.

Nothing is updated in place or deleted, so the table is the audit trail. A decision is acknowledged only
after its transaction commits; in WAL mode with `synchronous=NORMAL` a committed row survives the writer
being killed (only a power loss can take the last ones back). Leases (which reviewer holds an item until
when) are working state, not decisions, and live in their own small table.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# action -> the field it decides; the latest decision per (item, object, field) wins
FIELDS = {
    "accept": "status", "reject": "status", "policy": "status",
    "rename": "phrase", "drop": "present", "merge": "merge", "caption": "caption", "fix_mask": "masks",
}
ITEM_ACTIONS = {"accept", "reject", "policy", "caption"}  # about the whole item (object is NULL)

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item TEXT NOT NULL,
    object INTEGER,
    field TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    time REAL NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions (item, id);
CREATE INDEX IF NOT EXISTS decisions_key ON decisions (item, object, field, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TABLE IF NOT EXISTS leases (item TEXT PRIMARY KEY, reviewer TEXT NOT NULL, expires REAL NOT NULL);
"""


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

    @property
    def field(self) -> str:
        return FIELDS[self.action]


class DecisionStore:
    """One connection per thread (sqlite3 connections are not shared across threads)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def append(self, decision: Decision) -> int:
        """Store one decision; returns its id once committed (the acknowledgement)."""
        if decision.action not in FIELDS:
            raise ValueError(f"unknown action {decision.action!r}; one of {', '.join(FIELDS)}")
        conn = self._conn()
        cur = conn.execute(
            "INSERT INTO decisions (item, object, field, reviewer, time, action, payload, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (decision.item, decision.object, decision.field, decision.reviewer, decision.time or time.time(),
             decision.action, json.dumps(decision.payload), decision.reason))
        return int(cur.lastrowid or 0)

    def _decisions(self, where: str = "", args: tuple[Any, ...] = ()) -> list[Decision]:
        rows = self._conn().execute("SELECT id, item, object, reviewer, time, action, payload, reason FROM decisions "
                                    f"{where} ORDER BY id", args).fetchall()
        return [Decision(item=r[1], object=r[2], reviewer=r[3], time=r[4], action=r[5], payload=json.loads(r[6]),
                         reason=r[7], id=r[0]) for r in rows]

    def history(self, item: str | None = None) -> list[Decision]:
        """Every decision (of one item), oldest first."""
        return self._decisions("WHERE item = ?", (item,)) if item else self._decisions()

    def latest(self, item: str) -> list[Decision]:
        """The decision in force per (object, field) of one item, oldest first."""
        return self._decisions("WHERE id IN (SELECT MAX(id) FROM decisions WHERE item = ? GROUP BY object, field)",
                               (item,))

    def last_ids(self) -> dict[str, int]:
        """item -> id of its newest decision: what a resumed run compares with what it applied."""
        return dict(self._conn().execute("SELECT item, MAX(id) FROM decisions GROUP BY item").fetchall())

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM decisions").fetchone()[0])

    def lease(self, item: str, reviewer: str, seconds: float = 300.0) -> str:
        """Give (or renew) `item` to `reviewer` unless another reviewer holds a live lease; returns the holder."""
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT reviewer, expires FROM leases WHERE item = ?", (item,)).fetchone()
            if row is None or row[0] == reviewer or row[1] < now:
                conn.execute("INSERT OR REPLACE INTO leases (item, reviewer, expires) VALUES (?, ?, ?)",
                             (item, reviewer, now + seconds))
                holder = reviewer
            else:
                holder = row[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return holder

    def leases(self) -> dict[str, str]:
        """item -> reviewer of the live leases."""
        rows = self._conn().execute("SELECT item, reviewer FROM leases WHERE expires >= ?", (time.time(),))
        return dict(rows.fetchall())

    def release(self, item: str, reviewer: str) -> None:
        self._conn().execute("DELETE FROM leases WHERE item = ? AND reviewer = ?", (item, reviewer))
