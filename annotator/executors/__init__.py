"""Executors run a list of stage tasks over items: `local` in-process, `ray` on a Ray cluster."""

from __future__ import annotations

from typing import Protocol

from annotator.executors.runner import StageTask
from annotator.records import VideoItem


class Executor(Protocol):
    def run(self, tasks: list[StageTask], items: list[VideoItem]) -> list[VideoItem]: ...


def make_executor(kind: str, address: str | None = None, num_cpus: int | None = None,
                  num_gpus: float | None = None, show_progress: bool = True) -> Executor:
    if kind == "local":
        from annotator.executors.local import LocalExecutor

        return LocalExecutor(show_progress)
    if kind == "ray":
        from annotator.executors.ray import RayExecutor

        return RayExecutor(address, num_cpus, num_gpus, show_progress)
    raise ValueError(f"unknown executor {kind!r}: use local or ray")
