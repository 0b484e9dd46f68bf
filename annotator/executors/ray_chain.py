"""The Ray Data form of the executor, for pipelines with a stage hosted in an engine (`ray.data.llm`'s vLLM
processor lives in Ray Data): one `map_batches` actor pool per stage group, the engine's chain in between.
Everything else runs on `ray_stream`, which starts no helper actors."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from annotator.executors.runner import STATUS_KEYS, StageTask, WorkRef, status_row
from annotator.executors.work import WorkQueue
from annotator.records import VideoItem


def status_columns(items: list[VideoItem]) -> dict[str, np.ndarray]:
    """The status rows of `items` as a Ray Data batch (one column per key)."""
    rows = [status_row(it) for it in items]
    return {k: np.array([r[k] for r in rows], dtype=object) for k in STATUS_KEYS}


def _to_status(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return status_columns([VideoItem.from_json(text) for text in batch["item"]])


def chain(groups: list[list[StageTask]], classes: list[type], refs: Sequence[WorkRef] | WorkQueue,
          verbose: bool = False) -> Iterator[dict[str, str]]:
    """Status rows of a Ray Data stream through the groups (each group's actor class given)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI shows one display fed by status rows
    ctx.print_on_execution_start = verbose
    ctx.enable_operator_progress_bars = False
    blocks = max(1, math.ceil(len(refs) / max(1, groups[0][0].batch_size)))
    ds = ray.data.from_items([r.to_row() for r in refs], override_num_blocks=blocks)
    last_is_actor = True
    for i, (group, cls) in enumerate(zip(groups, classes, strict=True)):
        task = group[0]
        if task.stage.engine_spec() is not None:
            from annotator.executors import vllm_engine

            ds = vllm_engine.apply(ds, task)
            last_is_actor = i < len(groups) - 1
            continue
        ds = ds.map_batches(
            cls, batch_size=task.batch_size, batch_format="numpy",
            compute=_strategy(group),
            num_cpus=max(t.cpus for t in group), num_gpus=task.gpus or None, resources=task.custom or None,
        )
    if not last_is_actor:
        ds = ds.map_batches(_to_status, batch_format="numpy", num_cpus=0.05)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["video_id"])):
            yield {k: str(batch[k][i]) for k in STATUS_KEYS}


def _strategy(group: list[StageTask]) -> Any:
    """The group's pool: fixed, or autoscaled by Ray Data itself between the bounds when any stage asks for it."""
    import ray

    scales = [t.scale for t in group if t.scale is not None]
    if not scales:
        return ray.data.ActorPoolStrategy(size=max(t.concurrency for t in group), max_tasks_in_flight_per_actor=2)
    highs = [high for _, high in scales]
    return ray.data.ActorPoolStrategy(min_size=max(low for low, _ in scales),
                                      max_size=None if None in highs else max(highs),  # type: ignore[type-var]
                                      max_tasks_in_flight_per_actor=2)
