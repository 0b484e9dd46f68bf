"""Local executor: every stage in this process, one stage at a time (one model in memory at a time).

Videos go through in chunks of `chunk` (2,000): each chunk runs stage after stage, so the items held at once,
and the driver's memory with them, do not grow with the run; a stage's model loads once per chunk, which at
seconds per video is a small share of a chunk's work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from itertools import islice

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from annotator.executors.runner import StageRunner, StageTask, WorkRef, load_items, status_row
from annotator.records import VideoItem
from annotator.rundir import RunDir

CHUNK_VIDEOS = 2000


def batched(items: Iterable[WorkRef], size: int) -> Iterator[list[WorkRef]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class LocalExecutor:
    def __init__(self, show_progress: bool = True, chunk: int = CHUNK_VIDEOS) -> None:
        self.show_progress = show_progress
        self.chunk = chunk

    def stop(self) -> None:
        """Nothing held between runs."""

    def run(self, tasks: list[StageTask], refs: Iterable[WorkRef]) -> Iterator[dict[str, str]]:
        total = len(refs) if isinstance(refs, Sized) else None
        if total == 0:
            return
        outputs = {t.stage.name: t.stage.outputs for t in tasks}
        rundir = RunDir(tasks[0].run_root)
        columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not self.show_progress, transient=False) as progress:
            bars = [progress.add_task(task.stage.name, total=total) for task in tasks]
            for chunk in batched(refs, self.chunk):  # refs are made a chunk at a time (`WorkQueue`)
                items = load_items(rundir, chunk, outputs)
                for task, bar in zip(tasks, bars, strict=True):
                    items = self._stage(task, items, lambda n, bar=bar: progress.advance(bar, n))
                for item in items:
                    yield status_row(item)

    @staticmethod
    def _stage(task: StageTask, items: list[VideoItem], advance: Callable[[int], None]) -> list[VideoItem]:
        runner = StageRunner(task)
        out = []
        try:
            for i in range(0, len(items), task.batch_size):
                batch = runner(items[i : i + task.batch_size])
                out += batch
                advance(len(batch))
        finally:
            runner.close()
        return out
