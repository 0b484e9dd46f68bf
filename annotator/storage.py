"""One way to reach files: local paths and any fsspec URI (`s3://`, `gs://`, `memory://`, ...), atomic writes.

Object stores write an object whole on PUT, so writing bytes in one call is atomic there; on a local disk the
bytes go to a temporary name in the same folder and are renamed into place. Either way a reader sees the old
file or the new one, never half of one. Endpoints and credentials come from each store's usual environment
(for S3: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def release_memory() -> None:
    """Hand what Arrow freed back to the system (`malloc_trim` under the system allocator). Large tables read in
    parallel threads are freed into those threads' malloc arenas, where the next read does not find them: without
    this, a long run's end-of-run reads ratchet the driver's memory up stage after stage while Arrow holds little."""
    pa.default_memory_pool().release_unused()


def is_uri(path: str | Path) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def join(base: str, *parts: str) -> str:
    """`base/part/...` for URIs and local paths alike (no `os.path` rules on a URI)."""
    out = str(base).rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}" if part else out
    return out


def name(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def _s3_options() -> dict[str, Any]:
    """s3fs reads keys and region from the environment itself; the endpoint of S3-compatible stores too on
    recent botocore, but not on every version, so pass it explicitly."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # other workers write: always list afresh. One request per read: with more, s3fs first asks each object's
    # size (a HEAD before every GET) to split large ones, and our files are small (index parts, shards).
    options: dict[str, Any] = {"use_listings_cache": False, "max_concurrency": 1}
    if endpoint:
        options["endpoint_url"] = endpoint
    return options


@cache
def _filesystem(protocol: str, endpoint: str | None) -> fsspec.AbstractFileSystem:
    options = _s3_options() if protocol in ("s3", "s3a") else {}
    return fsspec.filesystem(protocol, **options)


os.register_at_fork(after_in_child=_filesystem.cache_clear)  # a forked child (DataLoader worker) opens its own:
# an object store client's event loop thread does not survive the fork


def filesystem(path: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for a path and the path as that filesystem names it."""
    text = str(path)
    if not is_uri(text):
        return _filesystem("file", None), os.path.abspath(text.removeprefix("file://"))
    protocol = text.split("://", 1)[0]
    fs = _filesystem(protocol, os.environ.get("AWS_ENDPOINT_URL"))
    return fs, fs._strip_protocol(text)


def exists(path: str) -> bool:
    fs, p = filesystem(path)
    return bool(fs.exists(p))


def isdir(path: str) -> bool:
    fs, p = filesystem(path)
    return bool(fs.isdir(p))


def read_bytes(path: str) -> bytes:
    fs, p = filesystem(path)
    return fs.cat_file(p)


def write_bytes(path: str, data: bytes, durable: bool = False) -> None:
    """Atomic: the whole object, or (local disk) a temp file renamed into place; honours the umask. `durable`
    (what is acknowledged to a person): on a local disk the file and its folder are fsynced before returning; an
    object store's PUT is durable when it returns."""
    fs, p = filesystem(path)
    if is_uri(path):
        fs.pipe_file(p, data)
        return
    folder = os.path.dirname(p)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(p)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
        if durable:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


@cache
def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def list_files(folder: str, suffix: str = "") -> list[str]:
    """Full paths (URIs keep their scheme) of the files directly in `folder`, sorted; [] if it is absent."""
    fs, p = filesystem(folder)
    try:
        entries = fs.ls(p, detail=True, refresh=True) if is_uri(folder) else fs.ls(p, detail=True)
    except FileNotFoundError:
        return []
    names = sorted(name(e["name"]) for e in entries if e["type"] == "file")
    return [join(folder, n) for n in names if n.endswith(suffix) and not n.startswith(".")]


def remove(path: str) -> None:
    fs, p = filesystem(path)
    with suppress(FileNotFoundError):
        fs.rm(p, recursive=True)


def size(path: str) -> int:
    fs, p = filesystem(path)
    return int(fs.size(p))


def du(folder: str) -> int:
    """Total bytes of the files under `folder` (0 if absent)."""
    fs, p = filesystem(folder)
    try:
        return int(fs.du(p, total=True))
    except FileNotFoundError:
        return 0


def write_table(path: str | Path, table: pa.Table, compact: bool = False) -> None:
    """One Parquet file, written whole. `compact` (checkpoints): zstd and no embedded Arrow schema, whose
    base64 copy of the nested types is most of a small shard; the Parquet schema alone reads back the same."""
    buf = io.BytesIO()
    if compact:
        pq.write_table(table, buf, compression="zstd", store_schema=False)
    else:
        pq.write_table(table, buf)
    write_bytes(str(path), buf.getvalue())


def _parquet(path: str | Path) -> pq.ParquetFile:
    """A Parquet file to read: opened in place on a local disk, fetched whole from an object store."""
    local = local_path(path)
    return pq.ParquetFile(local if local is not None else io.BytesIO(read_bytes(str(path))))


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file; on a local disk only `columns` are read from it, from an object store it comes whole.
    A column the file does not have is left out (files written before it existed)."""
    with _parquet(path) as parquet:
        return parquet.read(columns=columns)


def read_batches(path: str | Path, columns: list[str], rows: int) -> Iterator[pa.Table]:
    """One Parquet file, `rows` at a time (from an object store the file is fetched whole, then decoded in
    batches)."""
    with _parquet(path) as parquet:
        for batch in parquet.iter_batches(batch_size=rows, columns=columns):
            yield pa.Table.from_batches([batch])


def put_file(local: str, path: str) -> None:
    """Move a finished local file to `path` in one step: a rename on local disk (same folder), one upload to an
    object store (honours the umask, as `write_bytes`)."""
    fs, p = filesystem(path)
    if is_uri(path):
        fs.put_file(local, p)
        return
    os.makedirs(os.path.dirname(p), exist_ok=True)
    os.chmod(local, 0o666 & ~_umask())
    os.replace(local, p)


READ_THREADS = 16  # files fetched at once: an object store answers each in tens of milliseconds


@cache
def _readers() -> ThreadPoolExecutor:
    """The process's reading threads, made once: `status` reads several stages' files at once, and starting 16
    threads per read cost it a tenth of its time. (Never used from one of its own threads: no read waits on
    another.)"""
    return ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="read")


os.register_at_fork(after_in_child=_readers.cache_clear)  # a forked child starts its own threads


def read_tables(paths: list[str], columns: list[str] | None = None, missing_ok: bool = False,
                then: Callable[[pa.Table], pa.Table] | None = None) -> list[pa.Table]:
    """Many Parquet files, fetched in parallel threads (an object store's latency, not its bandwidth, is what a
    run's many small index files cost read one after another), in the order given. With `missing_ok`, a file gone
    meanwhile (compacted away) is left out. `then`: applied to each table in its thread, so what is held of a
    file is what it keeps (a filter), not the file."""

    def one(path: str) -> pa.Table | None:
        try:
            table = read_table(path, columns)
            return table if then is None else then(table)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise

    tables = [one(p) for p in paths] if len(paths) < 2 else list(_readers().map(one, paths))
    return [t for t in tables if t is not None]


def write_text(path: str | Path, text: str) -> None:
    write_bytes(str(path), text.encode())


def read_text(path: str | Path) -> str:
    return read_bytes(str(path)).decode()


def local_path(path: str | Path) -> Path | None:
    """The local path, or None for a remote URI."""
    return None if is_uri(path) else Path(str(path).removeprefix("file://"))


@contextmanager
def spooled(path: str, mode: str = "w") -> Iterator[IO[Any]]:
    """A file written locally, then moved (or uploaded) to `path` in one step once the block ends well."""
    local = local_path(path)
    folder = str(local.parent) if local is not None else None
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".spool.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        put_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
