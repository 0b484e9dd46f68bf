"""Ray executor: a Ray Data streaming chain with one `map_batches` actor pool per stage.

A stage whose model runs in an engine (`engine_spec()`, e.g. vLLM) joins the chain through
`annotator.executors.vllm_engine` instead.

`Resources` become `num_cpus`/`num_gpus`; a stage's `concurrency` is its pool size. With no address an
embedded local cluster starts; `address="auto"` (or host:port) joins a running one. Requests larger than
the cluster are scaled down proportionally: on small machines, whole-CPU actors for every stage would
wait on each other forever.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

import numpy as np

from annotator.executors.runner import StageRunner, StageTask
from annotator.records import VideoItem

log = logging.getLogger(__name__)


class _StageActor:
    """One actor of a stage's pool; rows carry items as JSON so any worker can decode them."""

    def __init__(self, task: StageTask) -> None:
        self.runner = StageRunner(task)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [VideoItem.from_json(text) for text in batch["item"]]
        done = self.runner(items)
        return {"item": np.array([it.to_json() for it in done], dtype=object)}


def fit_to_cluster(tasks: list[StageTask], cpus: float, gpus: float, headroom: float = 0.9) -> list[StageTask]:
    """Scale every actor's CPU (and GPU) share so all pools fit at once, keeping their proportions."""
    want_cpu = sum(t.cpus * t.concurrency for t in tasks)
    want_gpu = sum(t.gpus * t.concurrency for t in tasks)
    cpu_scale = min(1.0, headroom * cpus / want_cpu) if want_cpu else 1.0
    gpu_scale = min(1.0, gpus / want_gpu) if want_gpu and gpus else 1.0
    if cpu_scale < 1 or gpu_scale < 1:
        log.warning("stage resources exceed the cluster (%.2f CPU for %.2f wanted): scaling by %.2f",
                    cpus, want_cpu, cpu_scale)
    return [
        replace(t, cpus=round(t.cpus * cpu_scale, 4), gpus=round(t.gpus * gpu_scale, 4) if gpus else 0.0)
        for t in tasks
    ]


class RayExecutor:
    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
                 show_progress: bool = True) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.show_progress = show_progress

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        env = {k: v for k, v in os.environ.items() if k.startswith(("ANNOTATOR_", "HF_", "OPENAI_"))}
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        kwargs: dict = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING,
                        "runtime_env": {"env_vars": env}}
        if self.address:
            ray.init(address=self.address, **kwargs)
        else:
            ray.init(num_cpus=self.num_cpus or os.cpu_count(), num_gpus=self.num_gpus, **kwargs)

    def run(self, tasks: list[StageTask], items: list[VideoItem]) -> list[VideoItem]:
        import ray
        import ray.data

        self._init()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = self.show_progress and sys.stderr.isatty()
        resources = ray.cluster_resources()
        tasks = fit_to_cluster(tasks, float(resources.get("CPU", 1)), float(resources.get("GPU", 0)))
        ds = ray.data.from_items([{"item": it.to_json()} for it in items],
                                 override_num_blocks=max(1, len(items)))
        for task in tasks:
            if task.stage.engine_spec() is not None:
                from annotator.executors import vllm_engine

                ds = vllm_engine.apply(ds, task)
                continue
            ds = ds.map_batches(
                _StageActor, fn_constructor_kwargs={"task": task}, batch_size=task.batch_size,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=task.concurrency), num_cpus=task.cpus,
                num_gpus=task.gpus or None,
            )
        rows = ds.take_all()
        done = [VideoItem.from_json(row["item"]) for row in rows]
        return sorted(done, key=lambda it: it.video_id)
