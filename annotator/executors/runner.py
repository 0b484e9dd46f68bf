"""What every executor does around a stage: skip finished work, set up lazily, isolate errors, checkpoint.

Executors differ only in *where* a `StageRunner` is called (in-process, or inside a Ray actor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stage import Stage, error_from


@dataclass
class StageTask:
    """Everything a worker needs to run one stage: picklable, no models loaded."""

    stage: Stage
    fingerprint: str
    run_root: str
    concurrency: int
    batch_size: int
    cpus: float
    gpus: float


class StageRunner:
    def __init__(self, task: StageTask) -> None:
        self.task = task
        self.stage = task.stage
        self.rundir = RunDir(Path(task.run_root))
        self._ready = False

    def _setup(self) -> None:
        if not self._ready:
            self.stage.setup()  # models load only when some item needs this stage
            self._ready = True

    def __call__(self, items: list[VideoItem]) -> list[VideoItem]:
        name = self.stage.name
        todo = [it for it in items if it.error is None and name not in it.stages_done]
        if not todo:
            return items
        try:
            self._setup()
            results = self.stage.process(todo)
        except Exception as exc:  # noqa: BLE001 - setup or a whole-batch failure: every item records it
            error = error_from(name, exc)
            for it in todo:
                it.error = error
            return items
        by_id = {it.video_id: it for it in results}
        todo_ids = {it.video_id for it in todo}
        out = []
        for it in items:
            if it.video_id not in todo_ids:
                out.append(it)
                continue
            done = by_id.get(it.video_id)
            if done is None:  # a stage must answer for every item: never drop one silently
                it.error = error_from(name, RuntimeError("stage returned no result for this item"))
                done = it
            elif done.error is None:
                done.stages_done.append(name)
                self.rundir.write_stage_output(name, done, self.task.fingerprint)
            out.append(done)
        return out

    def close(self) -> None:
        if self._ready:
            self.stage.teardown()
            self._ready = False
