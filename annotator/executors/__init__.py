"""Executors run stage tasks over video refs and yield one status row per video: `local` in-process, `ray`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from annotator.executors.runner import StageTask, WorkRef


class Executor(Protocol):
    def run(self, tasks: list[StageTask], refs: list[WorkRef]) -> Iterator[dict[str, str]]: ...

    def stop(self) -> None:
        """Release what `run` set up (an embedded cluster), also when the run ended early."""


def make_executor(kind: str, address: str | None = None, num_cpus: int | None = None,
                  num_gpus: float | None = None, show_progress: bool = True, verbose: bool = False,
                  autoscale_interval_s: float = 10.0) -> Executor:
    if kind == "local":
        from annotator.executors.local import LocalExecutor

        return LocalExecutor(show_progress)
    if kind == "ray":
        from annotator.executors.ray import RayExecutor

        return RayExecutor(address, num_cpus, num_gpus, show_progress, verbose,
                           autoscale_interval_s=autoscale_interval_s)
    raise ValueError(f"unknown executor {kind!r}: use local or ray")
