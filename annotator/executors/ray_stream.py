"""Streaming over Ray actor pools, scheduled by the driver from object references alone.

Each pool (one stage, or consecutive CPU stages fused) is a set of actors. A call takes a batch of item
references and returns one reference per item (`num_returns`), so the next pool can batch them its own way;
item data moves worker to worker through the object store, and the driver only ever fetches the last pool's
`(video_id, status, …)` rows. Admission is bounded (enough work for every actor to hold two batches), which
keeps the object store small whatever the number of videos, and a pool's partial batch leaves only when
nothing upstream can still fill it.

Why not Ray Data: its planner, stats actor, autoscaling coordinator and actor-location tracker each start a
worker process next to ours; on a small machine that start-up is most of a short run's wall time.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from annotator.executors.runner import STATUS_KEYS, WorkRef

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2  # one batch running, one queued: an actor never waits on the driver


@dataclass
class Pool:
    """The actors of one pool, the references waiting for them and their calls in flight."""

    name: str
    actors: list[Any]
    batch_size: int
    queue: deque[tuple[str, Any]] = field(default_factory=deque)
    retry: deque[tuple[str, Any]] = field(default_factory=deque)  # from failed calls: sent one item per call
    busy: list[int] = field(default_factory=list)
    healthy: list[bool] = field(default_factory=list)
    gone: str = ""  # why an actor is gone for good (e.g. its constructor raised), for the videos left waiting

    def __post_init__(self) -> None:
        self.busy = [0] * len(self.actors)
        self.healthy = [True] * len(self.actors)

    def free_actor(self, idle: bool = False) -> int | None:
        """The least busy live actor that can take another call (with `idle`, one running nothing), if any."""
        live = [i for i in range(len(self.actors)) if self.healthy[i]]
        best = min(live, key=self.busy.__getitem__, default=None)
        room = 1 if idle else IN_FLIGHT_PER_ACTOR
        return best if best is not None and self.busy[best] < room else None

    def waiting(self) -> bool:
        return bool(self.queue or self.retry)

    def capacity(self) -> int:
        return len(self.actors) * self.batch_size * IN_FLIGHT_PER_ACTOR


@dataclass
class _Call:
    pool: int
    actor: int
    batch: list[tuple[str, Any]]  # (video id, input reference or work ref)
    items: list[Any]  # one output reference per item (none from the last pool, none for a ping)
    ping: bool = False
    weight: int = 1  # an isolated retry fills its actor: nothing queued behind it can die with it


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _first_line(exc: BaseException) -> str:
    """The line that says what happened: for a traceback Ray relays (a constructor that raised), its last line."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if len(lines) > 1 and _RAISED.match(lines[-1]) else lines[0])[:300]


def _lost_row(video_id: str, pool: Pool, exc: BaseException, what: str = "worker lost") -> dict[str, str]:
    return {"video_id": video_id, "status": "error", "stage": pool.name, "error_type": type(exc).__name__,
            "reason": f"{what}: {_first_line(exc)}"}


class StreamScheduler:
    """Feeds work refs into the first pool and moves each finished call's item references to the next one.

    A call returns its items' references plus a receipt (the last pool: only the status rows); the driver
    reads receipts, which are a few bytes, so it learns that a call failed without ever fetching an item.
    When a worker dies (a crash, the OOM killer), its actor restarts and is pinged before it gets work again;
    the videos of its lost calls are retried one per call on an otherwise idle actor, and a video whose
    isolated call fails too is the cause: it ends as an error naming the loss, and only it.
    """

    def __init__(self, pools: list[Pool], refs: list[WorkRef]) -> None:
        self.pools = pools
        self.pending: deque[WorkRef] = deque(refs)
        self.calls: dict[Any, _Call] = {}
        self.admitted = 0
        self.limit = sum(p.capacity() for p in pools) + pools[0].batch_size

    def run(self) -> Iterator[dict[str, str]]:
        import ray

        while self.pending or self.calls or any(p.waiting() for p in self.pools):
            self._admit()
            self._dispatch()
            if not self.calls:  # nothing running that could fill a partial batch: send what there is
                self._dispatch(flush=True)
            if not self.calls:
                yield from self._abandon()
                continue
            ready, _ = ray.wait(list(self.calls), num_returns=1)
            for receipt in ready:
                yield from self._finish(receipt, self.calls.pop(receipt))

    def _admit(self) -> None:
        """Work refs into the first pool while the stream holds fewer items than the pools can work on."""
        while self.pending and self.admitted < self.limit:
            ref = self.pending.popleft()
            self.pools[0].queue.append((ref.video_id, ref))
            self.admitted += 1

    def _more_coming(self, index: int) -> bool:
        return bool(self.pending) or any(self.pools[i].waiting() for i in range(index)) or any(
            c.pool < index for c in self.calls.values())

    def _dispatch(self, flush: bool = False) -> None:
        for index in reversed(range(len(self.pools))):  # downstream first: finishing work frees the stream
            pool = self.pools[index]
            while pool.retry and (actor := pool.free_actor(idle=True)) is not None:
                self._submit(index, actor, [pool.retry.popleft()], weight=IN_FLIGHT_PER_ACTOR)
            while pool.queue:
                if not flush and len(pool.queue) < pool.batch_size and self._more_coming(index):
                    break  # more is coming: wait for a full batch
                actor = pool.free_actor()
                if actor is None:
                    break
                batch = [pool.queue.popleft() for _ in range(min(pool.batch_size, len(pool.queue)))]
                self._submit(index, actor, batch)

    def _submit(self, index: int, actor: int, batch: list[tuple[str, Any]], weight: int = 1) -> None:
        pool = self.pools[index]
        last = index == len(self.pools) - 1
        returns = 1 if last else len(batch) + 1
        refs = pool.actors[actor].run.options(num_returns=returns).remote(*(ref for _, ref in batch))
        refs = refs if isinstance(refs, list) else [refs]
        pool.busy[actor] += weight
        self.calls[refs[-1]] = _Call(index, actor, batch, refs[:-1], weight=weight)

    def _ping(self, index: int, actor: int) -> None:
        """Ask a restarting actor whether it is back; it gets work again once it answers."""
        pool = self.pools[index]
        pool.healthy[actor] = False
        self.calls[pool.actors[actor].ready.remote()] = _Call(index, actor, [], [], ping=True)

    def _finish(self, receipt: Any, call: _Call) -> Iterator[dict[str, str]]:
        import ray

        pool = self.pools[call.pool]
        if call.ping:
            try:
                ray.get(receipt)
                pool.healthy[call.actor] = True
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.2)  # still restarting
                self._ping(call.pool, call.actor)
            except ray.exceptions.RayError as exc:  # gone for good
                log.error("pool %s: an actor is gone: %s", pool.name, exc)
                pool.gone = _first_line(exc)
            return
        pool.busy[call.actor] -= call.weight
        try:
            rows = ray.get(receipt)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError) as exc:
            log.warning("pool %s: a worker was lost (%s); retrying its videos one by one", pool.name, exc)
            if pool.healthy[call.actor]:
                self._ping(call.pool, call.actor)
            if call.weight == IN_FLIGHT_PER_ACTOR:  # it ran alone: this video is the cause
                self.admitted -= 1
                yield _lost_row(call.batch[0][0], pool, exc)
            else:
                pool.retry.extend(call.batch)
            return
        except ray.exceptions.RayError as exc:  # the call itself raised: not a worker's loss, no retry
            self.admitted -= len(call.batch)
            for vid, _ in call.batch:
                yield _lost_row(vid, pool, exc, "worker failed")
            return
        if call.pool < len(self.pools) - 1:
            self.pools[call.pool + 1].queue.extend(
                (vid, ref) for (vid, _), ref in zip(call.batch, call.items, strict=True))
            return
        self.admitted -= len(call.batch)
        for row in rows:
            yield {k: str(row[k]) for k in STATUS_KEYS}

    def _abandon(self) -> Iterator[dict[str, str]]:
        """Every actor of a pool is gone for good: what waits for it ends as errors instead of waiting forever."""
        for pool in self.pools:
            while pool.waiting() and not any(pool.healthy):
                vid, _ = (pool.retry or pool.queue).popleft()
                self.admitted -= 1
                yield _lost_row(vid, pool, RuntimeError(f"no live actor left in pool {pool.name}: {pool.gone}"))
        first = self.pools[0]
        while self.pending and not any(first.healthy):
            ref = self.pending.popleft()
            yield _lost_row(ref.video_id, first, RuntimeError(f"no live actor left in pool {first.name}: {first.gone}"))
