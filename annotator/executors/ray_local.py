"""The embedded Ray cluster (no `--address`): started early in a thread of its own, stopped without waiting.

Starting takes a few seconds of process launches (GCS, raylet, agents), so it begins as soon as the run knows
it will use Ray and overlaps the driver's own set-up (inputs, manifest, resume indexes). The processes are
started by an *owner* thread that stays alive until the cluster is stopped: Ray ties them to the thread that
launched them (`PR_SET_PDEATHSIG`), so a short-lived thread would take the cluster down with it.

Stopping: the autoscaler monitor has nothing to scale on an embedded cluster and does not answer SIGTERM, so
Ray's shutdown would wait out its one-second grace period; it is stopped first.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psutil

log = logging.getLogger(__name__)

_MONITOR = "autoscaler/_private/monitor.py"


class EmbeddedCluster:
    """`start()` returns at once; `wait()` blocks until Ray is up (or re-raises why it is not)."""

    def __init__(self, num_cpus: int | None, num_gpus: float | None, init_kwargs: dict[str, Any]) -> None:
        self.num_cpus = num_cpus or os.cpu_count()
        self.num_gpus = num_gpus
        self.init_kwargs = init_kwargs
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._own, name="ray-embedded-cluster", daemon=True)
            self._thread.start()

    def _own(self) -> None:
        try:
            import ray

            from annotator.executors import ray_orphans

            ray_orphans.reap()  # what an earlier embedded cluster left when its CLI was SIGKILLed
            # the workers inherit this process's environment (no runtime_env needed); no prestarted idle
            # workers (not even for the first driver): on a laptop they compete with the actors' start
            no_prestart = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}
            ray.init(num_cpus=self.num_cpus, num_gpus=self.num_gpus, _system_config=no_prestart, **self.init_kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for the cluster
            self._error = exc
        finally:
            self._ready.set()
        self._stop.wait()  # keep the thread (and so the cluster's processes) alive until stopped

    def wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Shut the cluster down (from any thread), then let the owner thread end."""
        import ray

        if self._thread is None:
            return
        self._ready.wait()
        if ray.is_initialized():
            _stop_monitor()
            ray.shutdown()
        self._stop.set()
        self._thread = None


def _stop_monitor() -> None:
    for child in psutil.Process().children(recursive=False):
        try:
            if any(_MONITOR in part for part in child.cmdline()):
                child.kill()
                child.wait(timeout=5)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.TimeoutExpired):
            continue
