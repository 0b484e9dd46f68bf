"""A configured pipeline: its stages, their cache fingerprints, and one resumable run over some inputs."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from annotator import __version__, video
from annotator.config import BuiltStage, ConfigError, PipelineConfig, build_stages
from annotator.executors import make_executor
from annotator.executors.runner import StageTask
from annotator.export.parquet import write_parquet
from annotator.models import refs
from annotator.records import VideoItem
from annotator.rundir import RunDir


def video_ids(inputs: list[Path]) -> list[str]:
    """Readable unique ids from file names: letters, digits, `_` and `-` only (no dots: VideoGLaMM)."""
    ids, seen = [], set()
    for path in inputs:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", path.stem if path.is_file() else path.name).strip("_") or "video"
        vid, n = base, 2
        while vid in seen:
            vid, n = f"{base}_{n}", n + 1
        seen.add(vid)
        ids.append(vid)
    return ids


@dataclass
class RunSummary:
    run_dir: Path
    videos: int
    completed: int
    errors: int
    qa: int
    objects: int
    reused: dict[str, int]  # stage -> items whose output came from an earlier run
    seconds: float


class Pipeline:
    def __init__(self, config: PipelineConfig, source: str = "pipeline") -> None:
        self.config = config
        self.source = source
        self.stages: list[BuiltStage] = build_stages(config, source)
        self.fingerprints: dict[str, str] = {}
        upstream = ""
        for built in self.stages:
            upstream = built.stage.fingerprint(upstream)
            self.fingerprints[built.name] = upstream

    def describe(self) -> list[dict[str, Any]]:
        """One row per stage for dry runs: models, resources, pool size; loads nothing."""
        return [
            {
                "stage": b.name,
                "models": b.stage.model_ids(),
                "cpus": b.resources.cpus,
                "gpus": b.resources.gpus,
                "concurrency": b.concurrency,
                "batch_size": b.batch_size,
            }
            for b in self.stages
        ]

    def tasks(self, run_root: Path) -> list[StageTask]:
        return [
            StageTask(stage=b.stage, fingerprint=self.fingerprints[b.name], run_root=str(run_root),
                      concurrency=b.concurrency, batch_size=b.batch_size, cpus=b.resources.cpus,
                      gpus=b.resources.gpus)
            for b in self.stages
        ]

    def resume(self, rundir: RunDir, item: VideoItem) -> tuple[VideoItem, str | None]:
        """The item as left by its last stage that finished with today's configuration."""
        for built in reversed(self.stages):
            cached = rundir.read_stage_output(built.name, item.video_id, self.fingerprints[built.name])
            if cached is not None and cached.path == item.path:
                return cached, built.name
        return item, None

    def prepare_models(self) -> None:
        """Build tiny checkpoints once in the driver, so parallel workers never race to build them."""
        for built in self.stages:
            for ref in built.stage.model_ids().values():
                if ref and refs.is_tiny(ref):
                    refs.resolve(ref)

    def check_executor(self, kind: str) -> None:
        """Engine-hosted stages (vLLM in Ray Data) exist only on the Ray executor: say so before any work."""
        engines = [b.name for b in self.stages if b.stage.engine_spec() is not None]
        if engines and kind != "ray":
            raise ConfigError(f"{self.source}: stage(s) {', '.join(engines)} run in a vLLM engine inside Ray Data; "
                              "use the ray executor (--executor ray)")

    def run(self, inputs: list[str | Path], output: str | Path, executor: str | None = None,
            address: str | None = None, show_progress: bool = True) -> RunSummary:
        started = time.time()
        spec = self.config.executor
        kind = executor or spec.kind
        self.check_executor(kind)
        rundir = RunDir(output)
        rundir.root.mkdir(parents=True, exist_ok=True)
        files = video.list_inputs(list(inputs))
        items = [VideoItem(video_id=vid, path=str(p.resolve())) for vid, p in zip(video_ids(files), files, strict=True)]
        reused: dict[str, int] = {}
        resumed = []
        for item in items:
            item, last = self.resume(rundir, item)
            if last:
                reused[last] = reused.get(last, 0) + 1
            resumed.append(item)
        if any(self.stages[-1].name not in it.stages_done for it in resumed):
            self.prepare_models()
        runner = make_executor(kind, address or spec.address, spec.num_cpus, spec.num_gpus, show_progress)
        run_id = uuid.uuid4().hex[:12]
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "annotator_version": __version__,
            "pipeline": self.config.model_dump(),
            "executor": kind,
            "stages": self.describe(),
            "fingerprints": self.fingerprints,
            "stage_inputs": {b.name: extra for b in self.stages if (extra := b.stage.cache_inputs())},
            "inputs": [it.path for it in items],
            "started": datetime.now(UTC).isoformat(),
            "finished": None,
        }
        rundir.write_manifest(manifest)
        done = runner.run(self.tasks(rundir.root), resumed)
        rundir.write_errors(done)
        write_parquet(done, rundir.export_dir / "parquet", self.config.name, run_id, self.fingerprints)
        ok = [it for it in done if it.error is None]
        summary = RunSummary(
            run_dir=rundir.root, videos=len(done), completed=len(ok), errors=len(done) - len(ok),
            qa=sum(len(it.qa) for it in ok), objects=sum(len(it.objects) for it in ok), reused=reused,
            seconds=round(time.time() - started, 2),
        )
        manifest["finished"] = datetime.now(UTC).isoformat()
        manifest["counts"] = {k: v for k, v in vars(summary).items() if k not in ("run_dir", "seconds")}
        manifest["counts"]["videos_without_qa"] = sum(1 for it in ok if not it.qa)
        manifest["counters"] = dict(sorted(sum((Counter(it.counters) for it in done), Counter()).items()))
        manifest["seconds"] = summary.seconds
        rundir.write_manifest(manifest)
        return summary
