"""Ray executor: one actor pool per stage group, streamed by `ray_stream`; the driver holds ids.

The driver feeds `WorkRef`s (video id, path, names of shards already finished) and receives one
`(video_id, status, stage, error_type, reason)` row per video. Items travel between actors in the object store,
never through the driver; the first pool rebuilds resumed items from their shards, every pool checkpoints, and
the last one writes export parts as videos finish. A pipeline with a stage whose model runs in an engine
(`engine_spec()`, e.g. vLLM through `ray.data.llm`) runs as a Ray Data chain instead (`ray_chain`).

`Resources` become `num_cpus`/`num_gpus` (plus custom resources to pin a stage to node types); a stage's
`concurrency` is its pool size. With no address an embedded local cluster starts (`ray_local`); `address="auto"`
(or host:port) joins a running one, shipping this package to the workers through `runtime_env.py_modules`.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from annotator.config import ConfigError
from annotator.executors import ray_local
from annotator.executors.autoscale import AUTOSCALE_INTERVAL_S
from annotator.executors.ray_chain import chain, status_columns
from annotator.executors.ray_stream import RESTART_WAIT_S, Pool, StreamScheduler
from annotator.executors.runner import StageRunner, StageTask, WorkRef, load_items, status_row
from annotator.records import VideoItem
from annotator.rundir import RunDir

log = logging.getLogger(__name__)

FLUSH_WAIT_S = 120.0  # how long the end of a run waits for the actors to write their buffered checkpoints
_ENV_PREFIXES = ("ANNOTATOR_", "HF_", "OPENAI_", "AWS_", "GOOGLE_", "TRANSFORMERS_")


class _StageActor:
    """One actor of a pool running one stage, or several fused CPU stages in turn, each with its own runner.

    The first pool takes refs (and rebuilds resumed items), the last one returns status rows.
    """

    def __init__(self, tasks: list[StageTask], outputs: dict[str, tuple[str, ...]], last: bool,
                 threads: int | None = None) -> None:
        import ray

        if threads:  # before any model library starts its thread pool
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ[var] = str(threads)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(threads)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.runners = [StageRunner(task, node=self.node_id[:12]) for task in tasks]
        self.outputs = outputs
        self.last = last

    def flush(self) -> None:
        """Write every runner's buffered checkpoints (before the actor is let go)."""
        for runner in self.runners:
            runner.flush()

    def ready(self) -> tuple[str, list[str]]:
        """Answered once the actor is up (the stream pings before sending work): its node and GPU ids."""
        return self.node_id, self.gpu_ids

    def _process(self, items: list[VideoItem]) -> list[VideoItem]:
        for runner in self.runners:
            size = runner.task.batch_size
            items = [it for i in range(0, len(items), size) for it in runner(items[i : i + size])]
        return items

    def run(self, *inputs: WorkRef | str) -> Any:
        """A stream call (`ray_stream`): work refs (admitted or re-admitted videos, rebuilt from their checkpoints)
        or item JSON in; each item's JSON and a receipt out (the node, per item the shards written and its status
        row, the seconds spent loading models), or, from the last pool, a receipt without the shards."""
        refs = [(i, ref) for i, ref in enumerate(inputs) if isinstance(ref, WorkRef)]
        first = self.runners[0].stage.name == next(iter(self.outputs))  # this pool starts the flow
        loaded = iter(load_items(self.runners[0].rundir, [ref for _, ref in refs], self.outputs, restart=first))
        rebuilt = {i for i, _ in refs}
        items = [next(loaded) if i in rebuilt else VideoItem.from_json(text)  # type: ignore[arg-type]
                 for i, text in enumerate(inputs)]
        for runner in self.runners:
            runner.shards.clear()
        setup_before = sum(r.setup_s for r in self.runners)
        done = self._process(items)
        rows = [status_row(it) for it in done]
        # models loaded in this call are not the pool's throughput: a detector's 20 s load would make each new
        # actor's first call look 20 s slow, and the autoscaler would size its pool for that
        setup_s = sum(r.setup_s for r in self.runners) - setup_before
        if self.last:
            return {"node": self.node_id, "rows": rows, "setup_s": setup_s}
        written = [[(r.stage.name, r.shards[it.video_id]) for r in self.runners if it.video_id in r.shards]
                   for it in done]
        return (*(it.to_json() for it in done), {"node": self.node_id, "done": written, "rows": rows,
                                                 "setup_s": setup_s})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A Ray Data call (`ray_chain`, for pipelines with an engine-hosted stage): columns in and out."""
        if "done" in batch:
            refs = [WorkRef.from_row({k: batch[k][i] for k in ("video_id", "path", "done")})
                    for i in range(len(batch["video_id"]))]
            items = load_items(self.runners[0].rundir, refs, self.outputs)
        else:
            items = [VideoItem.from_json(text) for text in batch["item"]]
        done = self._process(items)
        self.flush()  # Ray Data gives its actors no last call: every batch is checkpointed as it finishes
        if self.last:
            return status_columns(done)
        return {"item": np.array([it.to_json() for it in done], dtype=object)}


def _actor_class(tasks: list[StageTask], outputs: dict[str, tuple[str, ...]], last: bool,
                 threads: int | None) -> type:
    """A pool's actor class with its tasks bound in, named after its stages (what Ray's own tools show)."""

    class StageActor(_StageActor):
        def __init__(self) -> None:
            super().__init__(tasks, outputs, last, threads)

    StageActor.__name__ = StageActor.__qualname__ = "_".join(t.stage.name for t in tasks)
    return StageActor


def _python_sigint() -> None:
    """Make sure Ctrl-C reaches Python as KeyboardInterrupt (the CLI turns it into a resumable stop), whatever
    handler native code installed meanwhile."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def fit_to_cluster(tasks: list[StageTask], cpus: float, gpus: float, headroom: float = 0.9) -> list[StageTask]:
    """Scale every actor's CPU (and GPU) share so all pools fit at once, keeping their proportions."""
    want_cpu = sum(t.cpus * t.concurrency for t in tasks)
    want_gpu = sum(t.gpus * t.concurrency for t in tasks)
    cpu_scale = min(1.0, headroom * cpus / want_cpu) if want_cpu else 1.0
    gpu_scale = min(1.0, headroom * gpus / want_gpu) if want_gpu and gpus else 1.0
    if cpu_scale < 1 or gpu_scale < 1:
        log.info("stage resources exceed the cluster (%.2f CPU for %.2f wanted): scaling by %.2f",
                 cpus, want_cpu, cpu_scale)
    def down(value: float) -> float:  # rounded *down*: shares rounded up can sum past the cluster and starve a pool
        return math.floor(value * 10_000) / 10_000

    return [replace(t, cpus=down(t.cpus * cpu_scale), gpus=down(t.gpus * gpu_scale) if gpus else 0.0) for t in tasks]


def _fusible(task: StageTask) -> bool:
    """A plain CPU stage: no GPU, no custom resource, no engine, and no model server it waits on."""
    stage = task.stage
    return not task.gpus and not task.custom and stage.engine_spec() is None and stage.served() is None


def fuse(tasks: list[StageTask]) -> list[list[StageTask]]:
    """Consecutive plain CPU stages share one actor pool: on CPU a process per stage only adds start-up (each
    imports torch) and hand-offs, and buys no parallelism that a larger pool would not. A served stage is never
    fused: it waits on its server, and inside a shared actor its requests would stop while the CPU stages work."""
    groups: list[list[StageTask]] = []
    for task in tasks:
        if _fusible(task) and groups and _fusible(groups[-1][-1]):
            groups[-1].append(task)
        else:
            groups.append([task])
    return groups


def runtime_env(joining: bool) -> dict[str, Any]:
    """Environment for every worker: our env vars; when joining a cluster, this package itself."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec: dict[str, Any] = {"env_vars": env}
    if joining:
        import annotator

        spec["py_modules"] = [str(Path(annotator.__file__).parent)]
    return spec


class RayExecutor:
    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
                 show_progress: bool = True, verbose: bool = False, fuse_cpu_stages: bool = True,
                 restart_wait_s: float = RESTART_WAIT_S, autoscale_interval_s: float = AUTOSCALE_INTERVAL_S) -> None:
        self.address = address
        self.autoscale_interval_s = autoscale_interval_s
        self.restart_wait_s = restart_wait_s
        self.fuse_cpu_stages = fuse_cpu_stages
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.show_progress = show_progress
        self.verbose = verbose
        self._started = False

    def _init(self) -> None:
        """Join the cluster at `address`, or start the embedded one."""
        import ray

        if ray.is_initialized():
            return  # a cluster this process already runs (tests' fixtures): not ours to stop
        level = logging.INFO if self.verbose else logging.ERROR
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": self.verbose, "logging_level": level}
        if self.address:
            ray.init(address=self.address, runtime_env=runtime_env(joining=True), **kwargs)
        else:
            ray_local.start(self.num_cpus, self.num_gpus, kwargs)
            self._started = True
        _python_sigint()

    def stop(self) -> None:
        """Stop the embedded cluster now that the run is over (a joined cluster stays up)."""
        if self._started:
            ray_local.stop()
            self._started = False

    def _quiet(self) -> None:
        if not self.verbose:
            for name in ("ray", "ray.data", "ray.data._internal"):
                logging.getLogger(name).setLevel(logging.ERROR)

    def _plan(self, tasks: list[StageTask]) -> tuple[list[list[StageTask]], list[type]]:
        """The stage groups (fused CPU stages) scaled to the cluster, and each group's actor class."""
        import ray

        resources = ray.cluster_resources()
        _check_custom(tasks, resources)
        tasks = fit_to_cluster(tasks, float(resources.get("CPU", 1)), float(resources.get("GPU", 0)))
        outputs = {t.stage.name: t.stage.outputs for t in tasks}
        groups = fuse(tasks) if self.fuse_cpu_stages else [[t] for t in tasks]
        # Ray gives a fractional-CPU actor one OpenMP thread; on the embedded cluster (this machine, nothing else
        # on it) the cores are shared among the actor processes instead
        actors = sum(max(t.concurrency for t in g) for g in groups)
        threads = max(1, int(resources.get("CPU", 1)) // actors) if self._started else None
        return groups, [_actor_class(g, outputs, i == len(groups) - 1, threads) for i, g in enumerate(groups)]

    def pools(self, tasks: list[StageTask]) -> list[Pool]:
        """The stream's pools for `tasks` on the cluster this process is connected to (tests drive the
        scheduler with them)."""
        return [make_pool(g, cls) for g, cls in zip(*self._plan(tasks), strict=True)]

    def run(self, tasks: list[StageTask], refs: Iterable[WorkRef]) -> Iterator[dict[str, str]]:
        if not refs:
            return
        self._init()
        self._quiet()
        groups, classes = self._plan(tasks)
        if any(t.stage.engine_spec() is not None for t in tasks):
            yield from chain(groups, classes, refs, self.verbose)
        else:
            pools = [make_pool(g, cls) for g, cls in zip(groups, classes, strict=True)]
            _python_sigint()
            rundir = RunDir(tasks[0].run_root)
            try:
                yield from StreamScheduler(pools, refs, on_pools=rundir.write_pools, restart_wait_s=self.restart_wait_s,
                                           autoscale_interval_s=self.autoscale_interval_s).run()
            finally:
                close_pools(pools)


def close_pools(pools: list[Pool], wait_s: float = FLUSH_WAIT_S) -> None:
    """The end of a stream (also after Ctrl-C: a stop keeps work): the live actors write what they buffered,
    then every actor goes."""
    import ray

    flushes = [actor.flush.remote() for pool in pools
               for actor, gone in zip(pool.actors, pool.retired, strict=True) if not gone]
    if flushes:
        ray.wait(flushes, num_returns=len(flushes), timeout=wait_s)
    for pool in pools:
        for actor in pool.actors:
            ray.kill(actor)


def make_pool(group: list[StageTask], cls: type) -> Pool:
    """A group's actors, created at once so their start (imports, model loading) overlaps. Inside a call each stage
    takes batches of its own size (`call_batch`). Its deadline is the largest of theirs."""
    import ray

    task = group[0]
    cpus = max(t.cpus for t in group)
    remote = ray.remote(cls).options(num_cpus=cpus, num_gpus=task.gpus or None,
                                     resources=task.custom or None, max_restarts=-1, max_task_retries=0)
    size = max(t.concurrency for t in group)
    return Pool("+".join(t.stage.name for t in group), [remote.remote() for _ in range(size)],
                call_batch([t.batch_size for t in group]), call_timeout_s=max(t.call_timeout_s for t in group),
                demand={"CPU": cpus, "GPU": task.gpus, **task.custom}, scale=group_scale(group),
                factory=remote.remote)


def group_scale(group: list[StageTask]) -> tuple[int, int | None] | None:
    """A fused pool's bounds: autoscaled when any of its stages is, never below a fixed stage's size."""
    scales = [t.scale for t in group if t.scale is not None]
    if not scales:
        return None
    fixed = [t.concurrency for t in group if t.scale is None]
    highs = [high for _, high in scales]
    low = max([low for low, _ in scales] + fixed)
    return low, None if None in highs else max([h for h in highs if h is not None] + fixed)


def call_batch(sizes: list[int]) -> int:
    """Videos per call of a pool whose stages batch `sizes`: a multiple of each when one is near (8 and 64: 64;
    2 and 5: 10), so no stage gets a partial batch inside a full call; else the largest."""
    largest = max(1, *sizes)
    common = math.lcm(*(max(1, s) for s in sizes))
    return common if common <= 4 * largest else largest


def _check_custom(tasks: list[StageTask], resources: dict[str, float]) -> None:
    """A stage pinned to a resource no node has would wait forever: say so instead."""
    for task in tasks:
        for name, amount in task.custom.items():
            if resources.get(name, 0.0) < amount:
                raise ConfigError(f"stage {task.stage.name} asks for custom resource {name}={amount}, but the "
                                  f"Ray cluster has {resources.get(name, 0.0)}: start a node with "
                                  f"--resources='{{\"{name}\": {amount}}}' or change the stage's resources")
