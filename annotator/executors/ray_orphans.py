"""Processes an embedded Ray cluster left behind when its CLI was SIGKILLed, found and stopped by the next run.

Ray ties the raylet and GCS of `ray.init()` to the driver, but its dashboard and runtime-env agents are
reparented to init and live on. Each Ray process keeps its session's log files open, so the processes of a
session are known by those paths; a session whose raylet and GCS are gone is dead, and only its leftovers are
stopped (a live cluster, e.g. one from `ray start`, always has its raylet).
"""

from __future__ import annotations

import re
from collections import defaultdict

import psutil

SESSION = re.compile(r"/(session_\d{4}-\d\d-\d\d_[\d_-]+)/")
CORE = ("raylet", "gcs_server")


def _session(proc: psutil.Process) -> str | None:
    try:
        for f in proc.open_files():
            if match := SESSION.search(f.path):
                return match.group(1)
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    return None


def _is_ray(cmdline: list[str]) -> bool:
    text = " ".join(cmdline)
    return text.startswith("ray::") or any(core in text for core in CORE) or "ray/_private" in text


def reap() -> int:
    """Stop this user's Ray processes of dead sessions; the number stopped."""
    user = psutil.Process().username()
    sessions: dict[str, list[psutil.Process]] = defaultdict(list)
    alive: set[str] = set()
    for proc in psutil.process_iter(["cmdline", "username"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["username"] != user or not _is_ray(cmdline):
            continue
        if (session := _session(proc)) is None:
            continue
        sessions[session].append(proc)
        if any(core in " ".join(cmdline) for core in CORE):
            alive.add(session)
    stopped = [p for s, procs in sessions.items() if s not in alive for p in procs]
    for proc in stopped:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(stopped, timeout=5)
    return len(stopped)
