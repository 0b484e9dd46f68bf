"""The decisions store: immutable parts under review/decisions/, the latest per (item, object, field) wins, the
same on a local disk and on an S3 server; leases for one reviewer at a time."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from annotator import storage
from annotator.review.store import Decision, DecisionStore, Leases
from tests.conftest import BUCKET


def check_store(root: str) -> None:
    store = DecisionStore(root)
    first = store.append(Decision("v1", "rename", "ann", 2, {"text": "a cat"}))
    store.append(Decision("v1", "rename", "bob", 2, {"text": "a kitten"}))
    store.append(Decision("v1", "drop", "ann", 3, reason="not there"))
    store.append(Decision("v1", "accept", "ann"))
    store.append(Decision("v1", "reject", "bob", reason="blurry"))
    store.append_many([Decision("v2", "accept", "ann"), Decision("v2", "caption", "ann", payload={"text": "x"})])
    for reader in (store, DecisionStore(root)):  # the writer's view, and a fresh reader's from the parts
        latest = reader.latest("v1")
        assert [(d.action, d.object, d.reviewer) for d in latest] == [
            ("rename", 2, "bob"), ("drop", 3, "ann"), ("reject", None, "bob")]
        assert latest[0].payload == {"text": "a kitten"} and latest[2].reason == "blurry"
        assert [d.id for d in reader.history("v1")] == [first, first + 1, first + 2, first + 3, first + 4]
        assert reader.last_ids() == {"v1": first + 4, "v2": first + 6} and reader.count() == 7
    parts = storage.list_files(storage.join(root, "review", "decisions"))
    assert len(parts) == 6, "one immutable part per append, the batch in one"
    assert [d["item"] for d in json.loads(storage.read_text(parts[-1]))] == ["v2", "v2"]
    with pytest.raises(ValueError, match="unknown action"):
        store.append(Decision("v1", "approve", "ann"))
    assert len(storage.list_files(storage.join(root, "review", "decisions"))) == 6


def test_latest_decision_per_field_wins_and_history_keeps_everything(tmp_path: Path) -> None:
    check_store(str(tmp_path / "run"))


def test_the_same_store_works_on_an_object_store(s3: dict[str, str]) -> None:
    check_store(f"s3://{BUCKET}/review-store-run")


def test_a_second_writer_continues_the_ids_and_a_tie_has_one_order(tmp_path: Path) -> None:
    root = str(tmp_path / "run")
    ann, bob = DecisionStore(root, writer="a"), DecisionStore(root, writer="b")
    assert ann.append(Decision("v1", "accept", "ann")) == 1
    assert bob.append(Decision("v1", "reject", "bob", reason="no")) == 2, "bob saw ann's part before writing"
    raced = storage.join(root, "review", "decisions", "000000000002-a.json")  # ann raced bob to id 2
    storage.write_text(raced, json.dumps([{**vars(Decision("v1", "accept", "ann")), "id": 2, "writer": "a"}]))
    for reader in (DecisionStore(root), DecisionStore(root)):
        (status,) = reader.latest("v1")
        assert (status.action, status.writer) == ("reject", "b"), "same id: the writer name orders them"


def test_decisions_of_an_older_run_directory_are_read_from_its_sqlite_file(tmp_path: Path) -> None:
    root = tmp_path / "run"
    (root / "review").mkdir(parents=True)
    with sqlite3.connect(root / "review" / "decisions.sqlite") as conn:
        conn.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY, item TEXT, object INTEGER, field TEXT, "
                     "reviewer TEXT, time REAL, action TEXT, payload TEXT, reason TEXT)")
        conn.execute("INSERT INTO decisions VALUES (1, 'v1', 2, 'phrase', 'ann', 1.0, 'rename', "
                     "'{\"text\": \"a dog\"}', '')")
        conn.execute("INSERT INTO decisions VALUES (2, 'v1', NULL, 'status', 'ann', 2.0, 'accept', '{}', '')")
    store = DecisionStore(str(root))
    assert store.append(Decision("v1", "reject", "bob", reason="late")) == 3
    assert [(d.id, d.action) for d in DecisionStore(str(root)).latest("v1")] == [(1, "rename"), (3, "reject")]


def test_an_item_is_leased_to_one_reviewer_until_it_expires() -> None:
    leases = Leases()
    assert leases.lease("v1", "ann", 60) == "ann"
    assert leases.lease("v1", "bob", 60) == "ann", "held by ann"
    assert leases.lease("v1", "ann", 60) == "ann", "renewed"
    assert leases.held() == {"v1": "ann"}
    leases.release("v1", "ann")
    assert leases.lease("v1", "bob", -1) == "bob"  # already expired when granted
    assert leases.lease("v1", "ann", 60) == "ann", "an expired lease is free"
