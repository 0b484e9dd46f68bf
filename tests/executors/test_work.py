"""The work queue: refs made a chunk at a time from Arrow parts, each with the shards of the stages it finished."""

from __future__ import annotations

import pyarrow as pa

from annotator.executors.runner import WorkRef
from annotator.executors.work import WorkQueue

STAGES = ["ingest", "detect", "track"]


def test_refs_come_a_chunk_at_a_time_with_the_shards_of_their_finished_stages() -> None:
    fresh = pa.table({"video_id": [f"v{i}" for i in range(5)], "path": [f"/v{i}.mp4" for i in range(5)]})
    resumed = pa.table({"video_id": ["r0", "r1"], "path": ["/r0.mp4", "/r1.mp4"], "s0": ["i-1", "i-2"],
                        "s1": ["d-1", "d-1"]})
    empty = resumed.slice(0, 0)
    queue = WorkQueue(STAGES, [fresh, empty, resumed], chunk=2)
    assert len(queue) == 7 and queue
    first = queue.popleft()
    assert first == WorkRef("v0", "/v0.mp4", []) and len(queue) == 6
    assert len(queue.ready) == 1, "one chunk made, not the whole part"
    rest = list(queue)
    assert [r.video_id for r in rest] == ["v1", "v2", "v3", "v4", "r0", "r1"]
    assert rest[-1] == WorkRef("r1", "/r1.mp4", [("ingest", "i-2"), ("detect", "d-1")])
    assert not queue and len(queue) == 0


def test_a_queue_of_refs_already_made() -> None:
    refs = [WorkRef("a", "/a.mp4", [("ingest", "s")]), WorkRef("b", "/b.mp4")]
    queue = WorkQueue.of(refs)
    assert len(queue) == 2 and list(queue) == refs and not queue
