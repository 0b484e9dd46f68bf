"""The videos a run still has to do, as Arrow tables, handed out as `WorkRef`s a chunk at a time.

The driver never builds one Python object per input: `Pipeline.work` leaves the unfinished inputs in tables
(video id, path, and the shard of each stage it already finished), and an executor pops refs from this queue as
it admits videos, so what the driver holds grows with the stream's width, not with the run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import pyarrow as pa

from annotator.executors.runner import WorkRef

CHUNK = 1000


class WorkQueue:
    """Refs of `parts`: each a table (video_id, path, s0 .. s{k-1}) of videos that finished the first k stages,
    the shard of stage j in column `s{j}`."""

    def __init__(self, stages: list[str], parts: Iterable[pa.Table] = (), chunk: int = CHUNK) -> None:
        self.stages = stages
        self.parts = deque(p for p in parts if p.num_rows)
        self.chunk = chunk
        self.ready: deque[WorkRef] = deque()
        self.left = sum(p.num_rows for p in self.parts)

    @classmethod
    def of(cls, refs: Iterable[WorkRef]) -> WorkQueue:
        """A queue of refs already made (tests, small callers)."""
        queue = cls([])
        queue.ready.extend(refs)
        queue.left = len(queue.ready)
        return queue

    def __len__(self) -> int:
        return self.left

    def __bool__(self) -> bool:
        return self.left > 0

    def popleft(self) -> WorkRef:
        if not self.ready:
            self._fill()
        self.left -= 1
        return self.ready.popleft()

    def __iter__(self) -> Iterator[WorkRef]:
        """Pops every ref left (the queue is empty afterwards)."""
        while self:
            yield self.popleft()

    def _fill(self) -> None:
        if not self.parts:
            raise IndexError("pop from an empty WorkQueue")
        part = self.parts[0]
        rows, rest = part.slice(0, self.chunk), part.slice(self.chunk)
        if rest.num_rows:
            self.parts[0] = rest
        else:
            self.parts.popleft()
        shards = [c for c in rows.column_names if c not in ("video_id", "path")]
        columns = rows.to_pydict()
        for i, (vid, path) in enumerate(zip(columns["video_id"], columns["path"], strict=True)):
            self.ready.append(WorkRef(vid, path, [(self.stages[j], columns[s][i]) for j, s in enumerate(shards)]))
