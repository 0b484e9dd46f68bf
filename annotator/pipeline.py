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

import pyarrow as pa
import pyarrow.compute as pc

from annotator import __version__, storage
from annotator.config import BuiltStage, ConfigError, PipelineConfig, build_stages
from annotator.executors import make_executor
from annotator.executors.runner import ExportSpec, StageTask
from annotator.executors.work import WorkQueue
from annotator.inputs import ID_RULE, discover_table
from annotator.models import refs as model_refs
from annotator.outcomes import Outcomes, Walk
from annotator.rundir import INPUTS_SCHEMA, IndexCompactor, RunDir, locate
from annotator.stage import Stage
from annotator.status import RunStats, collect, cost_table, summed_counters

log = logging.getLogger(__name__)
REPAIR_PASSES = 2  # a run redoes at once what lost workers took with them, this many times at most


def _scale_text(scale: tuple[int, int | None]) -> str:
    """An autoscaled pool's bounds as `concurrency` reads: `auto`, `2..8`, `2..auto`."""
    low, high = scale
    return "auto" if (low, high) == (1, None) else f"{low}..{high if high is not None else 'auto'}"


def found_table(found: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"video_id": pa.array([v for v, _ in found], pa.string()),
                     "path": pa.array([p for _, p in found], pa.string())})


def input_digest(found: pa.Table) -> str:
    """The input set's fingerprint: sha256 of its sorted `id<TAB>path` lines, hashed a slice at a time."""
    lines = pc.binary_join_element_wise(found["video_id"], found["path"], "\t")
    lines = lines.take(pc.array_sort_indices(lines))
    digest = hashlib.sha256()
    for start in range(0, len(lines), 10_000):
        text = "\n".join(lines.slice(start, 10_000).to_pylist())
        digest.update((("\n" if start else "") + text).encode())
    return digest.hexdigest()[:16]


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
                    ) -> tuple[pa.Table, list[Any]]:
        """Videos to run (video_id, path): discovered under `inputs`, or, with none given, the videos a `source`
        stage lists; and the paths skipped with their reasons."""
        first = self.stages[0].stage
        if not inputs and hasattr(first, "inputs"):
            return found_table(first.inputs()), []
        return discover_table(inputs, recursive, id_rule)

    @staticmethod
    def id_rule(rundir: RunDir) -> int:
        """The id rule a run directory was made with (its manifest says; before rules were recorded: 1), so
        existing runs keep their ids; a new run directory takes today's."""
        try:
            return int((rundir.read_manifest().get("inputs") or {}).get("id_rule", 1))
        except FileNotFoundError:
            return ID_RULE

    def work(self, rundir: RunDir, found: pa.Table) -> tuple[WorkQueue, Counter[str], int]:
        """(to do, reused, settled) from the indexes only, in Arrow: the inputs `found` (video_id, path) that
        have not finished every stage, each with the shards of the stages it did finish (only the leading run of
        finished stages counts: an item resumes after the last of them); how many inputs reuse each stage's
        checkpoint as their last; and how many need nothing (finished, or filtered: a quality check said no, not
        asked again with the same configuration)."""
        names = [b.name for b in self.stages]
        walking = found.select(["video_id", "path"])
        parts, reused, settled = [], Counter(), 0
        for i, built in enumerate(self.stages):
            checks = type(built.stage).stale is not Stage.stale  # anything beyond the fingerprint
            rows = rundir.newest_rows(built.name, self.fingerprints[built.name],
                                      ["video_id", "path", "status", "shard", *(["counters"] if checks else [])])
            if checks:
                built.stage.bind(rundir.root)
                stale = built.stage.stale(rows)
                rows = rows.filter(pc.invert(pc.is_in(rows["video_id"], pa.array(sorted(stale), pa.string()))))
            at = locate(walking, rows)  # rows: one per video id
            status = pc.fill_null(pc.take(rows["status"], at), "")
            ok, filtered = pc.equal(status, "ok"), pc.equal(status, "filtered")
            stopped = walking.filter(pc.invert(pc.or_(ok, filtered)))
            held = int(pc.sum(filtered).as_py() or 0)
            parts.append(stopped)
            settled += held
            if i:
                reused[names[i - 1]] += stopped.num_rows + held
            walking = walking.filter(ok).append_column(f"s{i}", pc.take(rows["shard"], at).filter(ok))
            del rows
            storage.release_memory()
        settled += walking.num_rows
        if names and walking.num_rows:
            reused[names[-1]] += walking.num_rows
        return WorkQueue(names, parts), +reused, settled

    def _manifest(self, rundir: RunDir, kind: str, inputs: pa.Table, force_new_inputs: bool) -> dict[str, Any]:
        """The run's manifest; a run directory belongs to one input set unless told to take a new one."""
        digest = input_digest(inputs)
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
                                  f"{inputs.num_rows} now): pass --force-new-inputs to make this its input set (videos "
                                  "not in it leave the dataset), or choose another --output")
            history = [h for h in history if h and h != digest]
        else:
            run_id = uuid.uuid4().hex[:12]
        return {
            "run_id": run_id, "annotator_version": __version__, "pipeline": self.config.model_dump(),
            "executor": kind, "stages": self.describe(), "fingerprints": self.fingerprints,
            "stage_inputs": {b.name: extra for b in self.stages if (extra := b.stage.cache_inputs())},
            "inputs": {"count": inputs.num_rows, "sha256": digest, "history": history},
            "started": datetime.now(UTC).isoformat(), "finished": None,
            "generation": int((previous or {}).get("generation", 0)) + 1,  # orders index rows across runs
        }

    def run(self, inputs: list[Any], output: Any, executor: str | None = None, address: str | None = None,
            show_progress: bool = True, verbose: bool = False, keep_frames: bool = True, recursive: bool = True,
            force_new_inputs: bool = False,
            on_status: Callable[[dict[str, str]], None] | None = None,
            on_start: Callable[[int, int], None] | None = None,
            discovered: tuple[pa.Table, list[Any]] | None = None) -> RunSummary:
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
        rundir.write_inputs(pa.concat_tables([
            found.append_column("status", pa.array(["queued"] * found.num_rows, pa.string())).append_column(
                "reason", pa.array([""] * found.num_rows, pa.string())),
            pa.Table.from_pylist([vars(s) for s in skipped], schema=INPUTS_SCHEMA)]))
        for built in self.stages:  # a killed run left a part per batch: compacted once, before resume reads it
            rundir.compact_index(built.name)
        todo, reused, settled = self.work(rundir, found)
        if todo:
            self.preflight()
        if on_start:
            on_start(found.num_rows, settled)
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
            stats, result = self._outcomes(rundir, manifest, found, errors)
            for _ in range(REPAIR_PASSES):  # videos whose checkpoints went with a lost worker's buffer
                if not result.short:
                    break
                log.warning("%d videos lost checkpoints with a worker; redoing them from there", len(result.short))
                short = pa.array(sorted(result.short), pa.string())
                lost = self.work(rundir, found.filter(pc.is_in(found["video_id"], short)))[0]
                errors += [row for row in runner.run(tasks, lost) if row["status"] == "error"]
                stats, result = self._outcomes(rundir, manifest, found, errors)
        finally:
            runner.stop()  # an embedded cluster goes now, also when the run ended early
        return self._finalize(rundir, manifest, found, stats, result, dict(reused), started, keep_frames)

    def _outcomes(self, rundir: RunDir, manifest: dict[str, Any], found: pa.Table, errors: list[dict[str, str]]
                  ) -> tuple[RunStats, Outcomes]:
        """Each stage's figures and where every input stands, from the indexes (compacted first: the one full read
        of the run's end), one stage's newest rows at a time."""
        for built in self.stages:
            rundir.compact_index(built.name)
        walk = Walk(found, errors)
        stats = collect(rundir, manifest, found, walk=walk, compacted=True)
        return stats, walk.outcomes()

    def _finalize(self, rundir: RunDir, manifest: dict[str, Any], found: pa.Table, stats: RunStats,
                  result: Outcomes, reused: dict[str, int], started: float, keep_frames: bool) -> RunSummary:
        """Errors file, no garbage or stale export parts, counts in the manifest: all from the indexes."""
        rundir.write_errors(result.error_rows())
        for built in self.stages:
            rundir.collect_garbage(built.name)
        finished = rundir.finished_table(compacted=True, columns=("video_id", "shard"))
        rundir.drop_stale_exports(finished)
        if not keep_frames:
            storage.remove(rundir.path("frames"))
        qa, with_qa = rundir.export_counts("qa", finished)  # ids only, a part at a time: never the masks
        objects, _ = rundir.export_counts("objects", finished)
        del finished
        states = result.states
        ok = states["ok"]
        summary = RunSummary(
            run_dir=rundir.root, videos=found.num_rows, completed=ok, errors=states["error"] + states["short"],
            qa=qa, objects=objects, reused=reused, seconds=round(time.time() - started, 2),
            filtered=states["filtered"], pending=states["pending"],
        )
        manifest["finished"] = datetime.now(UTC).isoformat()
        manifest["counts"] = {"videos": summary.videos, "completed": ok, "errors": summary.errors, "qa": summary.qa,
                              "filtered": summary.filtered, "pending": summary.pending,
                              "filter_reasons": dict(result.reasons), "short": states["short"],
                              "objects": summary.objects, "reused": reused,
                              "videos_without_qa": ok - with_qa}
        manifest["counters"] = summed_counters(stats)
        manifest["costs"] = cost_table(rundir, stats)
        manifest["seconds"] = summary.seconds
        rundir.write_manifest(manifest)
        return summary
