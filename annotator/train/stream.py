"""QA triplets read from a run's export on demand: an index of (part, row) in memory, everything else on disk.

The export's three tables are written as parts that share a name (`export/parquet/{videos,objects,qa}/<part>`),
one per batch of the run's last stage, and a video's rows count only in the part its current final index row
names. The index lists, for each current triplet, its part and its row in that part's `qa` file: two small
integer arrays, built from the `qa` files' `video_id` column alone (read in parallel threads, local or any URI).
A triplet becomes a `Record` when asked for: its `qa` row, its `videos` row and its objects' rows (masks as RLE
strings, decoded later only for the frames a sample draws) are read from the part, keeping the last few parts
parsed. Memory holds the index and those few parts, whatever the size of the dataset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator import storage
from annotator.rundir import RunDir
from annotator.train.data import Record, SampleError

QA_COLUMNS = ["video_id", "qa_id", "question", "answer", "object_ids"]
VIDEO_COLUMNS = ["video_id", "path", "width", "height", "fps", "num_frames", "frame_indices"]
OBJECT_COLUMNS = ["video_id", "object_id", "phrase", "height", "width", "frame_indices", "mask_rles"]


def read_tables(paths: list[str], columns: list[str], threads: int = 8, missing_ok: bool = False) -> list[pa.Table]:
    """Many small Parquet files at once (threads: object-store latency and parsing overlap), only `columns`;
    with `missing_ok`, a file gone meanwhile (an index part compacted away by a finishing run) is skipped."""
    def one(path: str) -> pa.Table | None:
        try:
            return storage.read_table(path, columns)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise SampleError(f"{path} is gone: the run directory changed while the loader read it") from None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [t for t in pool.map(one, paths) if t is not None]


def current_parts(run: RunDir) -> pa.Table:
    """(video_id, shard) of every video that finished the run's last stage with its current configuration and
    input set: the part its export rows count in (`RunDir.finished_table`, Arrow throughout)."""
    return run.finished_table().select(["video_id", "shard"])


class StreamingRecords(Sequence[Record]):
    """The run's current triplets as a lazy sequence of `Record`s (see the module docstring)."""

    def __init__(self, run_dir: str, threads: int = 8, keep_parts: int = 4) -> None:
        self.run_dir = run_dir
        self.keep_parts = keep_parts
        run = RunDir(run_dir)
        grouped = current_parts(run).group_by("shard").aggregate([("video_id", "list")])
        by_part = {name: grouped["video_id_list"][n].values
                   for n, name in enumerate(grouped["shard"].to_pylist())}  # part -> its videos (Arrow)
        del grouped
        present = {storage.name(p): p for p in run.export_parts("qa")}
        missing = sorted(set(by_part) - set(present))
        if missing:
            raise SampleError(f"{run_dir}: export parts {missing[:3]} named by the index are missing")
        self.parts = sorted(by_part)
        self._folder = run.export_dir()
        ids = read_tables([present[name] for name in self.parts], ["video_id"], threads)
        rows = [np.flatnonzero(pc.is_in(t["video_id"], value_set=by_part[name]).to_numpy(zero_copy_only=False))
                .astype(np.int32) for name, t in zip(self.parts, ids, strict=True)]
        self.part = np.concatenate([np.full(len(r), n, np.int32) for n, r in enumerate(rows)]) if rows \
            else np.zeros(0, np.int32)
        self.row = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        self._tables: OrderedDict[tuple[str, str], pa.Table] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.row)

    def limit(self, n: int) -> StreamingRecords:
        """The first `n` triplets only (the index truncated in place)."""
        self.part, self.row = self.part[:n], self.row[:n]
        return self

    def _table(self, table: str, part: str, columns: list[str]) -> pa.Table:
        key = (table, part)
        with self._lock:
            found = self._tables.get(key)
            if found is not None:
                self._tables.move_to_end(key)
                return found
        data = storage.read_table(storage.join(self._folder, table, part), columns)
        with self._lock:
            self._tables[key] = data
            while len(self._tables) > 3 * self.keep_parts:
                self._tables.popitem(last=False)
        return data

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        part = self.parts[int(self.part[index])]
        qa = self._table("qa", part, QA_COLUMNS).slice(int(self.row[index]), 1).to_pylist()[0]
        vid = qa["video_id"]
        videos = self._table("videos", part, VIDEO_COLUMNS)
        video = videos.filter(pc.equal(videos["video_id"], vid)).to_pylist()
        objects = self._table("objects", part, OBJECT_COLUMNS)
        rows = objects.filter(pc.equal(objects["video_id"], vid)).to_pylist()
        by_id = {r["object_id"]: r for r in rows}
        name = f"{vid}/{qa['qa_id']}"
        if not video:
            raise SampleError(f"{name}: no video row in export part {part}")
        if missing := [i for i in qa["object_ids"] if i not in by_id]:
            raise SampleError(f"{name}: objects {missing} are not in the export")
        return Record(video[0], qa, [by_id[i] for i in qa["object_ids"]])

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self)):
            yield self[i]

    def __getstate__(self) -> dict[str, Any]:
        """DataLoader workers get the index, not the parsed parts or the lock."""
        state = dict(self.__dict__)
        state["_tables"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
