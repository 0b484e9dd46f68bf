"""Exporters: one registered class per format, each writing a run's finished videos one at a time.

An exporter reads `RunDir.iter_final_items()` (one rebuilt video at a time, by video id) and writes as it goes,
so memory holds one video whatever the run's size. JSON formats whose arrays sit side by side in one object
(COCO's images and annotations) spool each array to its own temporary file and join them at the end; every
output appears whole, by rename or one upload, never half-written.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.storage import spooled

Rle = Literal["compressed", "uncompressed"]


@dataclass(frozen=True)
class ExportOptions:
    split: str = "train"  # VideoGLaMM layouts
    rle: Rle = "compressed"  # YouTube-VIS and VideoGLaMM B: uncompressed for ground-truth readers
    max_phrases: int = 4  # grounded phrases kept per caption (VideoGLaMM)
    merge: bool = True  # parquet: one file per table, or a copy of the current parts


@dataclass
class Exported:
    """What an exporter wrote: its files or folders, how many videos, and a line worth saying (if any)."""

    paths: list[str] = field(default_factory=list)
    videos: int = 0
    note: str = ""


class Exporter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def write(self, run: RunDir, out: Path, options: ExportOptions) -> Exported: ...


class Counted:
    """Items passed through, counted as they go (an exporter says how many videos it read)."""

    def __init__(self, items: Iterable[VideoItem]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[VideoItem]:
        for item in self.items:
            self.count += 1
            yield item


_REGISTRY: dict[str, type[Exporter]] = {}


def register_exporter(cls: type[Exporter]) -> type[Exporter]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    """Import every module of this package, so each format's class registers itself (a new format is one file)."""
    import annotator.export as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")


def exporter_names() -> list[str]:
    """Every registered format: the canonical Parquet first, then by name."""
    _load_all()
    return sorted(_REGISTRY, key=lambda name: (name != "parquet", name))


def exporter(name: str) -> Exporter:
    names = exporter_names()
    if name not in names:
        raise KeyError(f"--format {name}: use one of {', '.join(names)}")
    return _REGISTRY[name]()


class JsonObject:
    """A JSON object written member by member: `head` members first, then each array (elements added one at a
    time, spooled to disk), then `tail` members. Memory holds one element. Use it in a `with` block: the spool
    goes whether the file was written (`close`) or not (an error on the way)."""

    def __init__(self, path: str, head: dict[str, Any], arrays: list[str]) -> None:
        self.path = path
        self.head = head
        self.dir = tempfile.mkdtemp(prefix="export-")
        self.files = {name: open(os.path.join(self.dir, name), "w") for name in arrays}
        self.counts = dict.fromkeys(arrays, 0)

    def __enter__(self) -> JsonObject:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.files.values():
            handle.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, array: str, element: Any) -> int:
        """Append to `array`; returns the element's 1-based position (COCO ids)."""
        handle = self.files[array]
        handle.write(("," if self.counts[array] else "") + json.dumps(element))
        self.counts[array] += 1
        return self.counts[array]

    def close(self, tail: dict[str, Any] | None = None) -> str:
        """Join head, arrays and `tail` into the file at `path`, which appears whole."""
        with spooled(self.path) as out:
            members = [json.dumps(k) + ": " + json.dumps(v) for k, v in self.head.items()]
            out.write("{" + ", ".join(members))
            for i, (name, handle) in enumerate(self.files.items()):
                handle.close()
                out.write((", " if members or i else "") + json.dumps(name) + ": [")
                with open(handle.name) as part:
                    shutil.copyfileobj(part, out)
                out.write("]")
            for key, value in (tail or {}).items():
                out.write(", " + json.dumps(key) + ": " + json.dumps(value))
            out.write("}")
        return self.path
