"""A configured pipeline: its stages, their cache fingerprints, and one resumable run over some inputs.

The driver (this module) lists inputs, reads the stage indexes to learn what is finished, hands out one
`WorkRef` per unfinished video and receives one status row per video back. It never holds an item.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow.compute as pc

from annotator import __version__, storage
from annotator.config import BuiltStage, ConfigError, PipelineConfig, build_stages
from annotator.executors import make_executor
from annotator.executors.runner import ExportSpec, StageTask, WorkRef
from annotator.inputs import ID_RULE, discover
from annotator.models import refs as model_refs
from annotator.outcomes import Latest, Outcomes, outcomes
from annotator.rundir import IndexCompactor, RunDir, row_keys
from annotator.stage import Stage
from annotator.status import cost_table, summed_counters

log = logging.getLogger(__name__)
REPAIR_PASSES = 2  # a run redoes at once what lost workers took with them, this many times at most


def _scale_text(scale: tuple[int, int | None]) -> str:
    """An autoscaled pool's bounds as `concurrency` reads: `auto`, `2..8`, `2..auto`."""
    low, high = scale
    return "auto" if (low, high) == (1, None) else f"{low}..{high if high is not None else 'auto'}"


@dataclass
class RunSummary:
    run_dir: str
    videos: int
    completed: int
    errors: int
    qa: int
    objects: int
    reused: dict[str, int]  # stage -> videos whose work up to that stage came from an earlier run
    seconds: float
    filtered: int = 0  # items a quality check stopped (with reasons in the manifest)
    pending: int = 0  # items held for review


class Pipeline:
    compact_every_videos = 1000  # while a run goes on, index parts are compacted every this many finished videos

    def __init__(self, config: PipelineConfig, source: str = "pipeline") -> None:
        self.config = config
        self.source = source
        self.stages: list[BuiltStage] = build_stages(config, source)
        for built in self.stages:
            built.stage.preload()
        self.fingerprints: dict[str, str] = {}
        upstream = ""
        for built in self.stages:
            upstream = built.stage.fingerprint(upstream)
            self.fingerprints[built.name] = upstream

    def describe(self) -> list[dict[str, Any]]:
        """One row per stage for dry runs and the manifest: models, resources, pool size; loads nothing."""
        return [
            {
                "stage": b.name,
                "models": b.stage.model_ids(),
                "cpus": b.resources.cpus,
                "gpus": b.resources.gpus,
                "custom": dict(b.resources.custom),
                "concurrency": b.concurrency if b.scale is None else _scale_text(b.scale),
                "batch_size": b.batch_size,
                "call_timeout_s": b.call_timeout_s,
                "outputs": list(b.stage.outputs),
            }
            for b in self.stages
        ]

    def tasks(self, run_root: str, export: ExportSpec | None = None, generation: int = 1) -> list[StageTask]:
        spec = self.config.executor
        return [
            StageTask(stage=b.stage, fingerprint=self.fingerprints[b.name], run_root=run_root,
                      concurrency=b.concurrency, batch_size=b.batch_size, cpus=b.resources.cpus,
                      gpus=b.resources.gpus, custom=dict(b.resources.custom),
                      export=export if i == len(self.stages) - 1 else None, call_timeout_s=b.call_timeout_s,
                      scale=b.scale, flush_rows=spec.flush_rows, flush_s=spec.flush_s, generation=generation)
            for i, b in enumerate(self.stages)
        ]

    def prepare_models(self) -> None:
        """Build tiny checkpoints once in the driver, so parallel workers never race to build them."""
        for built in self.stages:
            for ref in built.stage.model_ids().values():
                if ref and model_refs.is_tiny(ref):
                    model_refs.resolve(ref)

    def check_executor(self, kind: str) -> None:
        """Engine-hosted stages (vLLM in Ray Data) exist only on the Ray executor: say so before any work."""
        engines = [b.name for b in self.stages if b.stage.engine_spec() is not None]
        if engines and kind != "ray":
            raise ConfigError(f"{self.source}: stage(s) {', '.join(engines)} run in a vLLM engine inside Ray Data; "
                              "use the ray executor (--executor ray)")

    def preflight(self) -> None:
        """Every served stage's endpoints, asked for their models before any video starts: a server that is down
        or serves another model stops the run here, with one line, instead of failing every video."""
        from annotator.models.endpoints import EndpointUnavailable, preflight

        for built in self.stages:
            served = built.stage.served()
            if served is None:
                continue
            headers = {"Authorization": f"Bearer {os.environ.get(served.api_key_env, 'EMPTY')}"}
            try:
                good = preflight(built.name, served.endpoints, served.model, headers)
            except EndpointUnavailable as exc:
                raise ConfigError(str(exc)) from None
            if len(good) < len(served.endpoints):
                log.warning("stage %s: only %d of %d endpoints serve %s at start: %s", built.name, len(good),
                            len(served.endpoints), served.model, ", ".join(good))

    def find_inputs(self, inputs: list[Any], recursive: bool = True, id_rule: int = ID_RULE
                    ) -> tuple[list[tuple[str, str]], list[Any]]:
        """Videos to run: discovered under `inputs`, or, with none given, the videos a `source` stage lists."""
        first = self.stages[0].stage
        if not inputs and hasattr(first, "inputs"):
            return first.inputs(), []
        return discover(inputs, recursive, id_rule)

    @staticmethod
    def id_rule(rundir: RunDir) -> int:
        """The id rule a run directory was made with (its manifest says; before rules were recorded: 1), so
        existing runs keep their ids; a new run directory takes today's."""
        try:
            return int((rundir.read_manifest().get("inputs") or {}).get("id_rule", 1))
        except FileNotFoundError:
            return ID_RULE

    def work(self, rundir: RunDir, inputs: list[tuple[str, str]]
             ) -> tuple[list[WorkRef], list[WorkRef], dict[str, dict[str, Any]]]:
        """(finished, to do, filtered): every input with the shards of the stages it already finished, and the
        index row of each input a stage filtered (settled: not run again), from the indexes only."""
        progress, filtered = rundir.settled([(b.name, self.fingerprints[b.name]) for b in self.stages])
        for i, built in enumerate(self.stages):
            if type(built.stage).stale is Stage.stale:  # nothing beyond the fingerprint: no second index read
                continue
            built.stage.bind(rundir.root)
            for vid in built.stage.stale(rundir.latest(built.name, self.fingerprints[built.name])):
                if vid in progress:
                    progress[vid] = progress[vid][:i]
                if vid in filtered and filtered[vid]["stage"] == built.name:
                    del filtered[vid]
        finished, todo, held = [], [], {}
        for vid, path in inputs:
            rows = [r for r in progress.get(vid, []) if r["path"] == path]
            ref = WorkRef(vid, path, [(r["stage"], r["shard"]) for r in rows])
            if vid in filtered and filtered[vid]["path"] == path:
                held[vid] = filtered[vid]
                finished.append(ref)
            else:
                (finished if len(rows) == len(self.stages) else todo).append(ref)
        return finished, todo, held

    def _manifest(self, rundir: RunDir, kind: str, inputs: list[tuple[str, str]],
                  force_new_inputs: bool) -> dict[str, Any]:
        """The run's manifest; a run directory belongs to one input set unless told to take a new one."""
        digest = hashlib.sha256("\n".join(sorted(f"{v}\t{p}" for v, p in inputs)).encode()).hexdigest()[:16]
        history: list[str] = []
        try:
            previous = rundir.read_manifest()
        except FileNotFoundError:
            previous = None
        if previous is not None:
            run_id = previous["run_id"]  # a resumed run keeps its id
            old = previous.get("inputs") or {}
            history = [*old.get("history", []), old.get("sha256", "")]
            if old.get("sha256") != digest and not force_new_inputs:
                raise ConfigError(f"{rundir.root} is a run over another input set ({old.get('count', '?')} inputs, "
                                  f"{len(inputs)} now): pass --force-new-inputs to make this its input set (videos "
                                  "not in it leave the dataset), or choose another --output")
            history = [h for h in history if h and h != digest]
        else:
            run_id = uuid.uuid4().hex[:12]
        return {
            "run_id": run_id, "annotator_version": __version__, "pipeline": self.config.model_dump(),
            "executor": kind, "stages": self.describe(), "fingerprints": self.fingerprints,
            "stage_inputs": {b.name: extra for b in self.stages if (extra := b.stage.cache_inputs())},
            "inputs": {"count": len(inputs), "sha256": digest, "history": history},
            "started": datetime.now(UTC).isoformat(), "finished": None,
            "generation": int((previous or {}).get("generation", 0)) + 1,  # orders index rows across runs
        }

    def run(self, inputs: list[Any], output: Any, executor: str | None = None, address: str | None = None,
            show_progress: bool = True, verbose: bool = False, keep_frames: bool = True, recursive: bool = True,
            force_new_inputs: bool = False,
            on_status: Callable[[dict[str, str]], None] | None = None,
            on_start: Callable[[int, int], None] | None = None,
            discovered: tuple[list[tuple[str, str]], list[Any]] | None = None) -> RunSummary:
        """Run (or resume) over `inputs` into `output`; `on_start(total, already finished)` and `on_status(row)`
        feed a progress display. `discovered`: what `find_inputs` found for this run directory already (the CLI
        checks the inputs first), so an object-store prefix is listed once."""
        started = time.time()
        spec = self.config.executor
        kind = executor or spec.kind
        self.check_executor(kind)
        runner = make_executor(kind, address or spec.address, spec.num_cpus, spec.num_gpus, show_progress, verbose,
                               spec.autoscale_interval_s)
        rundir = RunDir(output)
        id_rule = self.id_rule(rundir)
        found, skipped = discovered if discovered is not None else self.find_inputs(list(inputs), recursive, id_rule)
        manifest = self._manifest(rundir, kind, found, force_new_inputs)
        manifest["inputs"]["id_rule"] = id_rule
        manifest["inputs"]["skipped"] = len(skipped)
        rundir.write_manifest(manifest)
        rundir.write_inputs([{"video_id": v, "path": p, "status": "queued", "reason": ""} for v, p in found]
                            + [vars(s) for s in skipped])
        for built in self.stages:  # a killed run left a part per batch: compacted once, before resume reads it
            rundir.compact_index(built.name)
        finished, todo, _ = self.work(rundir, found)
        if todo:
            self.preflight()
        reused = Counter(ref.done[-1][0] for ref in finished + todo if ref.done)
        if on_start:
            on_start(len(found), len(finished))
        if todo:
            self.prepare_models()
        export = ExportSpec(self.config.name, manifest["run_id"], self.fingerprints)
        rundir.write_pools({})  # an earlier run's pool sizes are not this one's (the Ray executor writes its own)
        errors: list[dict[str, str]] = []  # the error rows the driver got (a few per error, never one per video)
        compactor = IndexCompactor(rundir, [b.name for b in self.stages], self.compact_every_videos)
        tasks = self.tasks(rundir.root, export, manifest["generation"])
        try:
            for row in runner.run(tasks, todo):
                if row["status"] == "error":
                    errors.append(row)
                compactor.tick()
                if on_status:
                    on_status(row)
            latest, result = self._outcomes(rundir, errors)
            for _ in range(REPAIR_PASSES):  # videos whose checkpoints went with a lost worker's buffer
                if not result.short:
                    break
                log.warning("%d videos lost checkpoints with a worker; redoing them from there", len(result.short))
                lost = [ref for ref in self.work(rundir, found)[1] if ref.video_id in result.short]
                errors += [row for row in runner.run(tasks, lost) if row["status"] == "error"]
                latest, result = self._outcomes(rundir, errors)
        finally:
            runner.stop()  # an embedded cluster goes now, also when the run ended early
        return self._finalize(rundir, manifest, found, latest, result, dict(reused), started, keep_frames)

    def _outcomes(self, rundir: RunDir, errors: list[dict[str, str]]) -> tuple[Latest, Outcomes]:
        """Each stage's newest rows (compacted first: the one full read of the run's end) and where every input
        stands, in Arrow."""
        for built in self.stages:
            rundir.compact_index(built.name)
        inputs = rundir.current_table()
        keys = row_keys(inputs)
        latest = {}
        for built in self.stages:
            rows = rundir.newest_rows(built.name, self.fingerprints[built.name])
            latest[built.name] = rows.filter(pc.is_in(row_keys(rows), keys))  # the current input set's
        return latest, outcomes(latest, [b.name for b in self.stages], inputs, errors)

    def _finalize(self, rundir: RunDir, manifest: dict[str, Any], found: list[tuple[str, str]], latest: Latest,
                  result: Outcomes, reused: dict[str, int], started: float, keep_frames: bool) -> RunSummary:
        """Errors file, no garbage or stale export parts, counts in the manifest: all from the indexes."""
        rundir.write_errors(result.error_rows())
        for built in self.stages:
            rundir.collect_garbage(built.name)
        finished = rundir.finished_table()
        rundir.drop_stale_exports(finished)
        if not keep_frames:
            storage.remove(rundir.path("frames"))
        qa = rundir.read_export("qa", ["video_id"], finished)  # ids only: the driver never loads masks
        objects = rundir.read_export("objects", ["video_id"], finished)
        states = result.states
        ok = states["ok"]
        with_qa = pc.count_distinct(qa["video_id"]).as_py() if qa.num_rows else 0
        summary = RunSummary(
            run_dir=rundir.root, videos=len(found), completed=ok, errors=states["error"] + states["short"],
            qa=qa.num_rows,
            objects=objects.num_rows, reused=reused, seconds=round(time.time() - started, 2),
            filtered=states["filtered"], pending=states["pending"],
        )
        manifest["finished"] = datetime.now(UTC).isoformat()
        manifest["counts"] = {"videos": summary.videos, "completed": ok, "errors": summary.errors, "qa": summary.qa,
                              "filtered": summary.filtered, "pending": summary.pending,
                              "filter_reasons": dict(result.reasons), "short": states["short"],
                              "objects": summary.objects, "reused": reused,
                              "videos_without_qa": ok - with_qa}
        manifest["counters"] = summed_counters(latest)
        manifest["costs"] = cost_table(rundir, manifest, latest)
        manifest["seconds"] = summary.seconds
        rundir.write_manifest(manifest)
        return summary
