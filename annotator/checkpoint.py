"""What a stage adds to an item, as typed Arrow columns, and how an item is rebuilt from its stages' rows.

Arrow types come from the dataclasses in `records.py` (one source of truth): a stage shard holds `video_id`,
the stage's declared output fields and its counters, nothing else. Masks are stored once: a linked object
whose masks are what its tracks give (one track's masks, or their per-frame union) is written with null masks
and rebuilt from the tracks on read; only an object whose masks differ from that is stored in full.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

import pyarrow as pa
from pydantic import TypeAdapter

from annotator import masks
from annotator.records import MaskTrack, Track, VideoItem


def arrow_type(tp: Any) -> pa.DataType:
    """The Arrow type of a records.py annotation (dataclasses become structs, lists lists, dicts maps)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no Arrow type for the union {tp!r}")
        return arrow_type(args[0])
    if origin is list:
        return pa.list_(arrow_type(typing.get_args(tp)[0]))
    if origin is dict:
        key, value = typing.get_args(tp)
        return pa.map_(arrow_type(key), arrow_type(value))
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return pa.struct([(f.name, arrow_type(hints[f.name])) for f in dataclasses.fields(tp)])
    simple = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}
    if tp in simple:
        return simple[tp]
    raise TypeError(f"no Arrow type for {tp!r}")


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(VideoItem)


@functools.cache
def _adapter(field: str) -> TypeAdapter:
    return TypeAdapter(_hints()[field])


@functools.cache
def schema(outputs: tuple[str, ...]) -> pa.Schema:
    fields = [("video_id", pa.string())]
    fields += [(name, arrow_type(_hints()[name])) for name in outputs]
    return pa.schema(fields)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    """A record as plain dicts and lists for Arrow, like `dataclasses.asdict` without its deep copy: Arrow copies
    the values anyway, and copying every mask string and score first cost more than the rest of a checkpoint.
    Record lists are homogeneous, so a list whose first element is a plain value is taken as it is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list):
        return [_plain(v) for v in value] if (value and isinstance(value[0], (list, dict))) or (
            value and dataclasses.is_dataclass(value[0])) else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def derived_masks(track_ids: list[int], tracks: dict[int, Track], height: int, width: int) -> MaskTrack | None:
    """An object's masks as its tracks give them: per frame the union of their masks, the best score."""
    if any(t not in tracks for t in track_ids):
        return None
    if len(track_ids) == 1:
        return tracks[track_ids[0]].masks
    per_frame: dict[int, list[tuple[str, float]]] = {}
    for t in track_ids:
        m = tracks[t].masks
        for f, rle, score in zip(m.frames, m.rles, m.scores, strict=True):
            per_frame.setdefault(f, []).append((rle, score))
    frames = sorted(per_frame)
    return MaskTrack(frames=frames, rles=[masks.union([r for r, _ in per_frame[f]], height, width) for f in frames],
                     scores=[max(s for _, s in per_frame[f]) for f in frames])


def _row(item: VideoItem, outputs: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"video_id": item.video_id}
    for name in outputs:
        value = getattr(item, name)
        row[name] = [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
    if "objects" in row and item.info is not None:
        tracks = {t.track_id: t for t in item.tracks}
        h, w = item.info.height, item.info.width
        for obj, out in zip(item.objects, row["objects"], strict=True):
            if derived_masks(obj.track_ids, tracks, h, w) == obj.masks:
                out["masks"] = None  # what its tracks give: rebuilt from them, not stored twice
    return row


def encode(items: list[VideoItem], outputs: tuple[str, ...]) -> pa.Table:
    """One row per item: what its stage added."""
    return pa.Table.from_pylist([_row(it, outputs) for it in items], schema=schema(outputs))


def apply(item: VideoItem, row: dict[str, Any], outputs: tuple[str, ...]) -> None:
    """Set the fields one stage's row holds onto `item` (stages applied in flow order)."""
    for name in outputs:
        value = row.get(name)
        if name == "objects" and value and item.info is not None:
            tracks = {t.track_id: t for t in item.tracks}
            h, w = item.info.height, item.info.width
            value = [o if o["masks"] is not None else
                     dict(o, masks=dataclasses.asdict(derived_masks(o["track_ids"], tracks, h, w)))
                     for o in value]
        setattr(item, name, _adapter(name).validate_python(value))
