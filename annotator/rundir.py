"""The run directory is the checkpoint: manifest, inputs, frame store, stage shards and their indexes, export parts.

Layout (DESIGN §5), on a local disk or any fsspec URI:

    manifest.json
    inputs.parquet                                   every input: video_id, path, status, reason
    frames/<video_id>/<frame>.jpg                    sampled frames, written once by ingest
    stages/<stage>/part-<worker>-<seq>.parquet       what the stage added, one shard per worker flush
    stages/<stage>/index/part-<worker>-<seq>.parquet (video_id, fingerprint, shard, status, ..., order) rows
    export/parquet/{videos,objects,qa}/part-<worker>-<seq>.parquet
    errors.parquet

A shard counts only once an index file names it: data first, index last, each written whole. A shard no index
names (a worker killed in between) is garbage that `RunDir.collect_garbage` removes; it is never read.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from annotator import checkpoint, storage
from annotator.records import ERRORS_SCHEMA, VideoItem

INDEX_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("fingerprint", pa.string()),
        ("shard", pa.string()),  # data shard file name in stages/<stage>/ ("" when nothing was written)
        ("status", pa.string()),  # ok | error | filtered | pending
        ("error_type", pa.string()),
        ("reason", pa.string()),
        ("seconds", pa.float64()),  # this item's share of the stage's own time on its batch (model time)
        ("busy", pa.float64()),  # its share of the whole batch: loading, the stage, writing checkpoints
        ("node", pa.string()),
        ("worker", pa.string()),
        ("finished", pa.float64()),  # epoch seconds (shown, never compared: clocks differ between nodes)
        ("counters", pa.map_(pa.string(), pa.int64())),  # requests, retries, ... of this stage for this item
        ("generation", pa.int64()),  # the run's start count: with (worker, seq), the order of rows, clock-free
        ("seq", pa.int64()),  # the row's number within its worker
    ]
)
ORDER = ["generation", "_worker", "seq"]  # newest last; `_worker` is "" for rows from before generations

INPUTS_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("path", pa.string()), ("status", pa.string()), ("reason", pa.string())]
)

EXPORT_TABLES = ("videos", "objects", "qa")


def shard_name(worker: str, seq: int) -> str:
    return f"part-{worker}-{seq:06d}.parquet"


def new_worker_id() -> str:
    return uuid.uuid4().hex[:10]


def locate(table: pa.Table, current: pa.Table) -> pa.Array:
    """Each row's position in `current` (video_id, path), null where its video is not there or has another path.
    A join on both keys whose hash table is built on `table` (a batch) and probed with `current` (the input set):
    what a batch costs is its own rows, however many inputs there are."""
    probe = current.select(["video_id", "path"]).append_column(
        "_row", pa.array(np.arange(current.num_rows, dtype=np.int64)))
    build = table.select(["video_id", "path"]).append_column("_pos", pa.array(np.arange(table.num_rows,
                                                                                       dtype=np.int64)))
    pairs = probe.join(build, keys=["video_id", "path"], join_type="inner", use_threads=False)
    at = np.full(table.num_rows, -1, dtype=np.int64)
    at[pairs["_pos"].to_numpy()] = pairs["_row"].to_numpy()
    return pa.array(at, mask=at < 0)


def with_order(table: pa.Table) -> pa.Table:
    """An index file in today's schema: one written before rows carried their order gets generation 0 and its
    `finished` time as sequence (the order such a run directory always had)."""
    if "generation" in table.column_names:
        return table
    seq = pc.cast(pc.round(pc.multiply(table["finished"], 1e6)), pa.int64())
    return table.append_column("generation", pa.array([0] * table.num_rows, pa.int64())).append_column("seq", seq)


def newest(table: pa.Table, keys: list[str]) -> pa.Table:
    """The newest index row of each value of `keys` by the clock-free order (generation, worker, seq), in Arrow:
    no Python object per index row. Only the key and order columns are sorted; the winners are taken from the
    table once."""
    if table.num_rows < 2:
        return table
    legacy = pc.equal(pc.fill_null(table["generation"], 0), 0)
    narrow = pa.table({**{k: table[k] for k in keys}, "generation": table["generation"],
                       "_worker": pc.if_else(legacy, pa.scalar("", pa.string()), table["worker"]), "seq": table["seq"]})
    order = pc.sort_indices(narrow, sort_keys=[(k, "ascending") for k in [*keys, *ORDER]])
    ordered = narrow.select(keys).take(order)
    del narrow
    same = None
    for key in keys:  # a row is its group's last when the next row's keys differ
        column = ordered[key].combine_chunks()
        equal = pc.fill_null(pc.equal(column.slice(0, len(column) - 1), column.slice(1)), False)
        same = equal if same is None else pc.and_(same, equal)
    return table.take(order.filter(pa.concat_arrays([pc.invert(same), pa.array([True])])))


def _keep(table: pa.Table, mask: pa.ChunkedArray | pa.Array) -> pa.Table:
    """`table.filter(mask)`, without the copy when every row is kept (the common case: a run's own rows)."""
    return table if pc.all(mask, skip_nulls=False, min_count=0).as_py() is True else table.filter(mask)


def _by_shard(finished: pa.Table) -> Callable[[str], pa.Array]:
    """shard name -> the video ids of `finished` whose current rows it holds: one sort, then a slice per name."""
    order = pc.sort_indices(finished["shard"])
    ids = pc.take(finished["video_id"], order).combine_chunks()
    counts = pc.value_counts(pc.take(finished["shard"], order)) if finished.num_rows else None
    spans: dict[str, tuple[int, int]] = {}
    if counts is not None:
        start = 0
        for name, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            spans[name] = (start, count)
            start += count
    return lambda name: ids.slice(*spans.get(name, (0, 0)))


class IndexCompactor:
    """Compaction while a run goes on (the driver ticks it once per finished video): every `every_videos` videos
    or `every_s` seconds, each stage's new index parts become one file, so a run of any length leaves a bounded
    number of files per stage behind, also when it is killed."""

    def __init__(self, rundir: RunDir, stages: list[str], every_videos: int = 1000, every_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rundir, self.stages, self.every_videos, self.every_s, self.clock = rundir, stages, every_videos, every_s, \
            clock
        self.since = 0
        self.last = clock()

    def tick(self) -> None:
        self.since += 1
        if self.since >= self.every_videos or self.clock() - self.last >= self.every_s:
            for stage in self.stages:
                self.rundir.compact_index(stage, parts_only=True)
            self.since, self.last = 0, self.clock()


class RunDir:
    def __init__(self, root: str | Any) -> None:
        self.root = str(root).rstrip("/") if storage.is_uri(root) else str(storage.filesystem(root)[1])
        self._shards: OrderedDict[str, pa.Table] = OrderedDict()  # a few recently read shards

    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    @property
    def manifest_path(self) -> str:
        return self.path("manifest.json")

    @property
    def errors_path(self) -> str:
        return self.path("errors.parquet")

    @property
    def inputs_path(self) -> str:
        return self.path("inputs.parquet")

    def export_dir(self, fmt: str = "parquet") -> str:
        return self.path("export", fmt)

    def stage_dir(self, stage: str) -> str:
        return self.path("stages", stage)

    def index_dir(self, stage: str) -> str:
        return self.path("stages", stage, "index")

    def frames_dir(self, video_id: str) -> str:
        return self.path("frames", video_id)

    # manifest and inputs -------------------------------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        storage.write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True, default=str))

    def read_manifest(self) -> dict[str, Any]:
        try:  # one request, not a HEAD and then a GET (so for every small file below)
            return json.loads(storage.read_text(self.manifest_path))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.root} is not a run directory (no manifest.json)") from None

    def write_pools(self, sizes: dict[str, int]) -> None:
        """The Ray executor's current pool sizes (actors per pool), rewritten when one changes: `status` shows them."""
        storage.write_text(self.path("pools.json"), json.dumps(sizes, indent=2))

    def read_pools(self) -> dict[str, int]:
        try:
            return json.loads(storage.read_text(self.path("pools.json")))
        except FileNotFoundError:
            return {}

    def write_inputs(self, rows: list[dict[str, str]] | pa.Table) -> None:
        table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=INPUTS_SCHEMA)
        storage.write_table(self.inputs_path, table.select(INPUTS_SCHEMA.names).cast(INPUTS_SCHEMA))

    def skipped_inputs(self, limit: int | None = None) -> tuple[list[dict[str, str]], int]:
        """The first `limit` (all, without one) inputs.parquet rows of paths skipped, with their reasons, and how
        many there are (the queued ones stay unread as rows)."""
        try:
            inputs = storage.read_table(self.inputs_path, ["path", "status", "reason"])
        except FileNotFoundError:
            return [], 0
        skipped = inputs.filter(pc.equal(inputs["status"], "skipped"))
        return skipped.slice(0, limit).to_pylist(), skipped.num_rows

    def read_inputs(self) -> list[dict[str, str]]:
        try:
            return storage.read_table(self.inputs_path).to_pylist()
        except FileNotFoundError:
            return []

    # shards and indexes --------------------------------------------------------------------------------
    def write_shard(self, stage: str, name: str, table: pa.Table) -> None:
        storage.write_table(storage.join(self.stage_dir(stage), name), table, compact=True)

    def write_index(self, stage: str, name: str, rows: list[dict[str, Any]]) -> None:
        """Written last: from now on the shard of the same name counts."""
        storage.write_table(storage.join(self.index_dir(stage), name), pa.Table.from_pylist(rows, schema=INDEX_SCHEMA),
                            compact=True)

    def read_index(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """Every index row of a stage (all parts and compacted files): listed once, read in parallel. A file
        compacted away between the listing and its read (a live run) sends the read back to a new listing: the
        compacted file, written before its parts are removed, was not in the first (at most 3 listings; the last
        is taken as it is). `columns`: only those kept."""
        read = None if columns is None else list(dict.fromkeys([*columns, "generation", "seq", "finished"]))
        for _ in range(3):
            files = storage.list_files(self.index_dir(stage), ".parquet")
            got = storage.read_tables(files, read, missing_ok=True)
            if len(got) == len(files):
                break
        tables = [with_order(t) for t in got]
        if columns is not None:
            tables = [t.select(columns) for t in tables]
        schema = INDEX_SCHEMA if columns is None else pa.schema([INDEX_SCHEMA.field(c) for c in columns])
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def index_batches(self, stage: str, columns: list[str], rows: int = 16_384) -> Iterator[pa.Table]:
        """A stage's index rows a batch at a time (the newest-row rule not applied: for an index just compacted,
        where a video has one row per fingerprint and path)."""
        for path in storage.list_files(self.index_dir(stage), ".parquet"):
            yield from storage.read_batches(path, columns, rows)

    def current_batches(self, stage: str, fingerprint: str, columns: list[str], current: pa.Table | None = None,
                        compacted: bool = False) -> Iterator[pa.Table]:
        """A stage's newest rows with `fingerprint`; with `current` (video_id, path), only those of its videos, each
        with its position there (`_row`, see `locate`). `compacted` (right after a full compaction): the index a
        batch at a time, never whole; otherwise one table. Only the batch in hand is held: each step rebinds it."""
        if compacted:
            batches: Iterable[pa.Table] = self.index_batches(stage, [*columns, "fingerprint"])
        else:
            batches = [self.newest_rows(stage, fingerprint, [*columns, "fingerprint"])]
        for batch in batches:
            batch = _keep(batch, pc.equal(batch["fingerprint"], fingerprint)).select(columns)
            if current is not None:
                batch = batch.append_column("_row", locate(batch, current))
                batch = _keep(batch, pc.is_valid(batch["_row"]))
            yield batch

    def current_rows(self, stage: str, fingerprint: str, columns: list[str], current: pa.Table | None = None
                     ) -> pa.Table:
        """`current_batches` of a live index (not just compacted): one table."""
        return next(self.current_batches(stage, fingerprint, columns, current))

    def newest_rows(self, stage: str, fingerprint: str | None = None, columns: list[str] | None = None
                    ) -> pa.Table:
        """Each video's newest index row for `stage` (with that fingerprint, when given), as an Arrow table;
        `columns`: only those (and what ordering needs) are held."""
        order = ["video_id", "fingerprint", "generation", "worker", "seq"]
        needed = None if columns is None else list(dict.fromkeys([*columns, *order]))
        table = self.read_index(stage, needed)
        if fingerprint is not None and table.num_rows:
            table = table.filter(pc.equal(table["fingerprint"], fingerprint))
        table = newest(table, ["video_id"])
        return table if columns is None else table.select(columns)

    def latest(self, stage: str, fingerprint: str | None = None) -> dict[str, dict[str, Any]]:
        """video_id -> its newest index row for `stage` (with that fingerprint, when given), as Python rows: for
        tests and small runs; what runs, `status`, review and reports read stays Arrow (`newest_rows`)."""
        return {row["video_id"]: row for row in self.newest_rows(stage, fingerprint).to_pylist()}

    def settled(self, stages: list[tuple[str, str]]) -> tuple[dict[str, list[dict[str, Any]]],
                                                                dict[str, dict[str, Any]]]:
        """video_id -> ok index rows of the stages it finished with today's fingerprints, in flow order (only the
        leading run of finished stages counts: an item resumes after the last of them); and video_id -> the row
        where a stage *filtered* the item after that leading run: such an item is settled (a quality check said
        no), not to be run again with the same configuration. Python rows, as `latest`: for tests (the run's own
        walk is `Pipeline.work`)."""
        done: dict[str, list[dict[str, Any]]] = {}
        filtered: dict[str, dict[str, Any]] = {}
        for i, (stage, fingerprint) in enumerate(stages):
            rows = self.latest(stage, fingerprint)
            for vid, row in rows.items():
                have = done.setdefault(vid, []) if i == 0 and row["status"] in ("ok", "filtered") else done.get(vid)
                if have is None or len(have) != i:
                    continue
                if row["status"] == "ok":
                    have.append(row)
                elif row["status"] == "filtered":
                    filtered[vid] = row
        return {v: rows for v, rows in done.items() if rows}, filtered

    def shard(self, stage: str, name: str) -> pa.Table:
        """One data shard of a stage (the last few read are kept: a batch's items share their shards)."""
        key = f"{stage}/{name}"
        if key not in self._shards:
            self._shards[key] = storage.read_table(storage.join(self.stage_dir(stage), name))
            while len(self._shards) > 8:
                self._shards.popitem(last=False)
        return self._shards[key]

    def load_item(self, video_id: str, path: str, done: Iterable[tuple[str, tuple[str, ...], str]]) -> VideoItem:
        """Rebuild an item from its finished stages' rows: `(stage, outputs, shard)` in flow order."""
        item = VideoItem(video_id=video_id, path=path)
        for stage, outputs, shard in done:
            table = self.shard(stage, shard)
            rows = table.filter(pc.equal(table["video_id"], video_id)).to_pylist()
            if not rows:
                raise FileNotFoundError(f"{stage} shard {shard} holds no row for {video_id}")
            checkpoint.apply(item, rows[-1], outputs)
            item.stages_done.append(stage)
        return item

    def compact_index(self, stage: str, parts_only: bool = False) -> None:
        """Merge a stage's index parts into one file (then drop the parts), so resume reads one file; a row
        superseded by a newer one for the same video, fingerprint and path is dropped (what every query answers
        stays the same). A finishing run compacts, and so does the start of a resumed one: a killed run is
        compacted by the next. `parts_only` (during a run): only the parts written since the last compaction are
        merged, so each compaction costs what was added, not the whole index again."""
        files = storage.list_files(self.index_dir(stage), ".parquet")
        if parts_only:
            files = [f for f in files if not storage.name(f).startswith("compacted-")]
        if len(files) < 2:
            return
        drop = self._superseded(files, ["video_id", "fingerprint", "path"])
        target = storage.join(self.index_dir(stage), f"compacted-{new_worker_id()}.parquet")
        with storage.spooled(target, "wb") as handle:  # file by file: memory holds one of them and the keys
            writer = pq.ParquetWriter(handle, INDEX_SCHEMA, compression="zstd", store_schema=False)
            for gone, path in zip(drop, files, strict=True):
                table = with_order(storage.read_table(path)).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
                if len(gone):
                    keep = np.ones(table.num_rows, dtype=bool)
                    keep[gone] = False
                    table = table.filter(pa.array(keep))
                if table.num_rows:
                    writer.write_table(table)
            writer.close()
        for f in files:
            storage.remove(f)
        storage.release_memory()

    @staticmethod
    def _superseded(files: list[str], keys: list[str]) -> list[np.ndarray]:
        """Per file, the positions of its rows a newer row of the same `keys` supersedes. Only videos with more
        than one row are ordered: the video ids are read first, then the key and order columns of just those
        videos' rows (filtered in the reading threads), so a run whose videos each have one row holds its ids."""
        ids = storage.read_tables(files, ["video_id"])
        counts = pc.value_counts(pa.chunked_array([c for t in ids for c in t["video_id"].chunks], pa.string()))
        twice = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        del ids, counts
        none = [np.zeros(0, dtype=np.int64) for _ in files]
        if not len(twice):
            return none

        def repeated(table: pa.Table) -> pa.Table:
            table = with_order(table).select([*keys, "generation", "worker", "seq"])
            table = table.append_column("_at", pa.array(np.arange(table.num_rows, dtype=np.int64)))
            return table.filter(pc.is_in(table["video_id"], value_set=twice))

        tables = storage.read_tables(files, [*keys, "generation", "worker", "seq", "finished"], then=repeated)
        file = np.concatenate([np.full(t.num_rows, i, dtype=np.int64) for i, t in enumerate(tables)])
        narrow = pa.concat_tables(tables)
        del tables
        lost = np.ones(narrow.num_rows, dtype=bool)
        lost[newest(narrow.append_column("_n", pa.array(np.arange(narrow.num_rows))), keys)["_n"].to_numpy()] = False
        order = np.argsort(file[lost], kind="stable")
        at, file = narrow["_at"].to_numpy()[lost][order], file[lost][order]
        return np.split(at, np.searchsorted(file, np.arange(1, len(files))))

    def collect_garbage(self, stage: str) -> int:
        """Remove data shards no index names (left by a worker killed between data and index). Returns count. The
        index is read a batch at a time: what is held is the set of shard names."""
        named: set[str] = set()
        for batch in self.index_batches(stage, ["shard"]):
            named.update(pc.unique(batch["shard"]).to_pylist())
        removed = 0
        for f in storage.list_files(self.stage_dir(stage), ".parquet"):
            if storage.name(f) not in named:
                storage.remove(f)
                removed += 1
        return removed

    # errors and exports --------------------------------------------------------------------------------
    def write_errors(self, rows: list[dict[str, Any]]) -> None:
        keep = [{k: r[k] for k in ERRORS_SCHEMA.names} for r in rows]
        storage.write_table(self.errors_path, pa.Table.from_pylist(keep, schema=ERRORS_SCHEMA))

    def read_errors(self) -> pa.Table:
        try:
            return storage.read_table(self.errors_path)
        except FileNotFoundError:
            return ERRORS_SCHEMA.empty_table()

    def export_part(self, table: str, name: str) -> str:
        return storage.join(self.export_dir(), table, name)

    def export_parts(self, table: str) -> list[str]:
        return storage.list_files(storage.join(self.export_dir(), table), ".parquet")

    def current_table(self) -> pa.Table:
        """(video_id, path) of the run's current input set (empty before any run wrote one), as Arrow: no Python
        row per input."""
        try:
            inputs = storage.read_table(self.inputs_path, ["video_id", "path", "status"])
        except FileNotFoundError:
            return pa.table({"video_id": pa.array([], pa.string()), "path": pa.array([], pa.string())})
        return inputs.filter(pc.equal(inputs["status"], "queued")).select(["video_id", "path"])

    def finished_table(self, compacted: bool = False, columns: tuple[str, ...] = ("video_id", "path", "shard")
                       ) -> pa.Table:
        """(video_id, path, shard) of every video whose final stage's newest row is ok with the run's
        configuration, in the current input set: Arrow throughout. `compacted`: the final stage's index was just
        compacted (`current_batches`); `columns`: only those kept."""
        manifest = self.read_manifest()
        last = manifest["stages"][-1]["stage"]
        current = self.current_table()
        parts = [_keep(b, pc.equal(b["status"], "ok")).select(list(columns))
                 for b in self.current_batches(last, manifest["fingerprints"][last],
                                               ["video_id", "path", "status", "shard"],
                                               current if current.num_rows else None, compacted)]
        del current
        schema = pa.schema([INDEX_SCHEMA.field(c) for c in columns])
        table = pa.concat_tables(parts).combine_chunks() if parts else schema.empty_table()
        storage.release_memory()
        return table

    def finished_videos(self) -> dict[str, dict[str, Any]]:
        """video_id -> (path, shard) of `finished_table` (small runs and tests)."""
        return {row["video_id"]: row for row in self.finished_table().to_pylist()}

    def current_parts(self, table: str, columns: list[str] | None = None,
                      finished: pa.Table | None = None) -> Iterator[tuple[str, pa.Table]]:
        """(part, its rows of current videos) for each export part of `table`: a video's rows count only in the
        part its current final index row names (`finished`: `finished_table()`, when the caller has it). The
        finished videos are grouped by part once (a sort), not scanned again for every part."""
        finished = self.finished_table() if finished is None else finished
        by_part = _by_shard(finished)
        for part in self.export_parts(table):
            ids = by_part(storage.name(part))
            if not len(ids):
                yield part, storage.read_table(part, columns).slice(0, 0)
                continue
            data = storage.read_table(part, columns)
            yield part, _keep(data, pc.is_in(data["video_id"], value_set=ids))

    def read_export(self, table: str, columns: list[str] | None = None,
                    finished: pa.Table | None = None) -> pa.Table:
        """One export table from its current parts' rows, by video id."""
        tables = [data for _, data in self.current_parts(table, columns, finished)]
        if not tables:
            from annotator.export.parquet import SCHEMAS

            empty = SCHEMAS[table].empty_table()
            return empty.select(columns) if columns else empty
        return pa.concat_tables(tables).sort_by("video_id")

    def export_counts(self, table: str, finished: pa.Table | None = None) -> tuple[int, int]:
        """(rows, videos) of an export table's current rows, counted a part at a time from the video ids (a
        video's current rows are all in one part)."""
        rows = videos = 0
        for _, data in self.current_parts(table, ["video_id"], finished):
            rows += data.num_rows
            videos += pc.count_distinct(data["video_id"]).as_py() if data.num_rows else 0
        return rows, videos

    def drop_stale_exports(self, finished: pa.Table | None = None) -> int:
        """Remove export parts that no current final row names (superseded by a changed configuration)."""
        valid = set(pc.unique((self.finished_table() if finished is None else finished)["shard"]).to_pylist())
        removed = 0
        for table in EXPORT_TABLES:
            for part in self.export_parts(table):
                if storage.name(part) not in valid:
                    storage.remove(part)
                    removed += 1
        return removed

    def iter_final_items(self, chunk: int = 1000) -> Iterator[VideoItem]:
        """Every video that finished the run's last stage with the run's configuration, rebuilt one at a time,
        by video id: exporters write each before the next is read. Each stage's newest rows stay Arrow tables;
        only a chunk of videos at a time becomes Python rows."""
        manifest = self.read_manifest()
        names = [row["stage"] for row in manifest["stages"]]
        outputs = {row["stage"]: tuple(row["outputs"]) for row in manifest["stages"]}
        finished = self.finished_table().sort_by("video_id")
        columns = ["video_id", "path", "status", "shard"]
        stages = {stage: self.newest_rows(stage, manifest["fingerprints"][stage], columns) for stage in names}
        for start in range(0, finished.num_rows, chunk):
            ids = finished["video_id"].slice(start, chunk)
            rows = {stage: {r["video_id"]: r for r in t.filter(pc.is_in(t["video_id"], ids)).to_pylist()}
                    for stage, t in stages.items()}
            for vid, path in zip(ids.to_pylist(), finished["path"].slice(start, chunk).to_pylist(), strict=True):
                done = [rows[stage].get(vid) for stage in names]
                if all(r is not None and r["status"] == "ok" and r["path"] == path for r in done):
                    yield self.load_item(vid, path, [(stage, outputs[stage], r["shard"])
                                                     for stage, r in zip(names, done, strict=True)])

    def final_items(self) -> list[VideoItem]:
        """`iter_final_items`, all at once (small runs: the report, tests)."""
        return list(self.iter_final_items())
