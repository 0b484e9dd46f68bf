"""Local executor: every stage in this process, one stage at a time (one model in memory at a time)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from annotator.executors.runner import StageRunner, StageTask
from annotator.records import VideoItem


class LocalExecutor:
    def __init__(self, show_progress: bool = True) -> None:
        self.show_progress = show_progress

    def run(self, tasks: list[StageTask], items: list[VideoItem]) -> list[VideoItem]:
        columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not self.show_progress, transient=False) as progress:
            for task in tasks:
                bar = progress.add_task(task.stage.name, total=len(items))
                runner = StageRunner(task)
                out: list[VideoItem] = []
                try:
                    for i in range(0, len(items), task.batch_size):
                        out += runner(items[i : i + task.batch_size])
                        progress.update(bar, completed=len(out))
                finally:
                    runner.close()
                items = out
        return items
