"""Local executor: every stage in this process, one stage at a time (one model in memory at a time)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from annotator.executors.runner import StageRunner, StageTask, WorkRef, load_items, status_row
from annotator.rundir import RunDir


class LocalExecutor:
    def __init__(self, show_progress: bool = True) -> None:
        self.show_progress = show_progress

    def stop(self) -> None:
        """Nothing held between runs."""

    def run(self, tasks: list[StageTask], refs: list[WorkRef]) -> Iterator[dict[str, str]]:
        if not refs:
            return
        outputs = {t.stage.name: t.stage.outputs for t in tasks}
        items = load_items(RunDir(tasks[0].run_root), refs, outputs)
        columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not self.show_progress, transient=False) as progress:
            for task in tasks:
                bar = progress.add_task(task.stage.name, total=len(items))
                runner = StageRunner(task)
                out = []
                try:
                    for i in range(0, len(items), task.batch_size):
                        out += runner(items[i : i + task.batch_size])
                        progress.update(bar, completed=len(out))
                finally:
                    runner.close()
                items = out
        for item in items:
            yield status_row(item)
