"""The embedded Ray cluster (no `--address`): started lean, stopped without waiting.

On a laptop the cluster's fixed cost is most of a short run, so it starts no idle workers (not even the ones
Ray prestarts for the first driver: they would compete with the actors' start for the few cores), and it is
stopped explicitly as soon as the last row arrives rather than in Ray's exit hook, which first sleeps half a
second. The autoscaler monitor has nothing to scale here and does not answer SIGTERM, so Ray's shutdown would
wait out its one-second grace period for it; it is stopped first.
"""

from __future__ import annotations

import os
from typing import Any

import psutil

_MONITOR = "autoscaler/_private/monitor.py"


def start(num_cpus: int | None, num_gpus: float | None, init_kwargs: dict[str, Any]) -> None:
    """Start the cluster from the main thread: Ray ties the processes it launches to the launching thread."""
    import ray

    from annotator.executors import ray_orphans

    ray_orphans.reap()  # what an earlier embedded cluster left when its CLI was SIGKILLed
    # the workers inherit this process's environment: no runtime_env needed
    no_prestart = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}
    ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, _system_config=no_prestart, **init_kwargs)


def stop() -> None:
    import ray

    if not ray.is_initialized():
        return
    for child in psutil.Process().children(recursive=False):
        try:
            if any(_MONITOR in part for part in child.cmdline()):
                child.kill()
                child.wait(timeout=5)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.TimeoutExpired):
            continue
    ray.shutdown()
