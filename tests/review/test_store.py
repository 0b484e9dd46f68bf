"""The decisions store: append-only, latest per (item, object, field) wins, leases for one reviewer at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from annotator.review.store import Decision, DecisionStore


def test_latest_decision_per_field_wins_and_history_keeps_everything(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.sqlite")
    first = store.append(Decision("v1", "rename", "ann", 2, {"text": "a cat"}))
    store.append(Decision("v1", "rename", "bob", 2, {"text": "a kitten"}))
    store.append(Decision("v1", "drop", "ann", 3, reason="not there"))
    store.append(Decision("v1", "accept", "ann"))
    store.append(Decision("v1", "reject", "bob", reason="blurry"))
    store.append(Decision("v2", "accept", "ann"))
    latest = store.latest("v1")
    assert [(d.action, d.object, d.reviewer) for d in latest] == [
        ("rename", 2, "bob"), ("drop", 3, "ann"), ("reject", None, "bob")]
    assert latest[0].payload == {"text": "a kitten"} and latest[2].reason == "blurry"
    assert [d.id for d in store.history("v1")] == [first, first + 1, first + 2, first + 3, first + 4]
    assert store.last_ids() == {"v1": first + 4, "v2": first + 5} and store.count() == 6


def test_rows_cannot_be_changed_or_deleted(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.sqlite")
    store.append(Decision("v1", "accept", "ann"))
    conn = sqlite3.connect(tmp_path / "d.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE decisions SET action = 'reject'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM decisions")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with pytest.raises(ValueError, match="unknown action"):
        store.append(Decision("v1", "approve", "ann"))


def test_an_item_is_leased_to_one_reviewer_until_it_expires(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d.sqlite")
    assert store.lease("v1", "ann", 60) == "ann"
    assert store.lease("v1", "bob", 60) == "ann", "held by ann"
    assert store.lease("v1", "ann", 60) == "ann", "renewed"
    assert store.leases() == {"v1": "ann"}
    store.release("v1", "ann")
    assert store.lease("v1", "bob", -1) == "bob"  # already expired when granted
    assert store.lease("v1", "ann", 60) == "ann", "an expired lease is free"
