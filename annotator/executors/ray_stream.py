"""Streaming over Ray actor pools, scheduled by the driver from object references alone.

Each pool (one stage, or consecutive CPU stages fused) is a set of actors. A call takes a batch of item
references and returns one reference per item (`num_returns`) plus a receipt, so the next pool can batch them its
own way; item data moves worker to worker through the object store. The driver reads only receipts: the shards
each call wrote per video and, from the last pool, the `(video_id, status, …)` rows. Admission is bounded (enough
work for every actor to hold two batches), which keeps the object store small whatever the number of videos,
and a pool's partial batch leaves only when nothing upstream can still fill it.

Losses cost only in-flight work. The driver knows each in-stream video's finished checkpoints from the receipts,
so when a call is lost (its worker crashed, its node went away, its input object went with a node, or it ran past
its pool's `call_timeout_s` and its actor was killed) each of its videos re-enters the same pool as a `WorkRef`,
rebuilt from the run directory at its first stage without a checkpoint. A loss on a node that is still alive
may be the video's own doing: its videos are retried one per call, and a video whose isolated call is lost too
ends as an error, and only it. An actor whose restart cannot be placed (its node gone, the cluster full) leaves
its pool when the pool has others; when it was the pool's last, the largest pool holding the same resources is
drained of one actor to make room. The loop never sleeps: it waits on its calls up to the next deadline.

Autoscaled pools (`concurrency: auto` or `{min, max}`) are resized every `autoscale_interval_s` to what
`autoscale.plan` makes of each pool's measured rate (videos per actor-second of its calls) and queue: new actors
are pinged before they get work, and a pool shrinks by draining actors, which finish their calls first.

Why not Ray Data: its planner, stats actor, autoscaling coordinator and actor-location tracker each start a
worker process next to ours; on a small machine that start-up is most of a short run's wall time.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from annotator.executors.autoscale import AUTOSCALE_INTERVAL_S, PoolLoad, fits, plan
from annotator.executors.runner import STATUS_KEYS, WorkRef
from annotator.executors.work import WorkQueue

log = logging.getLogger(__name__)

SETTLE_PLANS = 3  # a pool turns from growing to shrinking (or back) only this many plans after its last change
WARM_PLANS = 4  # plans per autoscale interval while a pool has no finished call
IN_FLIGHT_PER_ACTOR = 2  # one batch running, one queued: an actor never waits on the driver
CALL_TIMEOUT_S = 1800.0  # a call past this has hung (a wedged kernel, a stalled mount): its actor is restarted
RESTART_WAIT_S = 30.0  # an actor not back after this cannot be placed: its pool shrinks or another makes room


@dataclass
class Pool:
    """The actors of one pool, the references waiting for them and their calls in flight."""

    name: str
    actors: list[Any]
    batch_size: int
    call_timeout_s: float = CALL_TIMEOUT_S
    demand: dict[str, float] = field(default_factory=dict)  # one actor's resources: what retiring one frees
    queue: deque[tuple[str, Any]] = field(default_factory=deque)
    retry: deque[tuple[str, Any]] = field(default_factory=deque)  # from lost calls: sent one video per call
    busy: list[int] = field(default_factory=list)
    healthy: list[bool] = field(default_factory=list)
    retired: list[bool] = field(default_factory=list)  # left the pool for good (shrunk or drained)
    draining: list[bool] = field(default_factory=list)  # takes no new call; retired once its calls are done
    nodes: list[str] = field(default_factory=list)  # the node each actor last answered from ("" before)
    gpus: list[tuple[str, ...]] = field(default_factory=list)  # the GPU ids Ray gave each actor (known once up)
    # when each actor last made progress (came up, took work while idle, finished a call); None while it is
    # starting or restarting: an actor busy for call_timeout_s past it has hung, and a call's deadline never
    # counts model loading at start-up or the time it waited behind the actor's other call
    progress: list[float | None] = field(default_factory=list)
    gone: str = ""  # why an actor is gone for good (e.g. its constructor raised), for the videos left waiting
    scale: tuple[int, int | None] | None = None  # autoscaled between (min, max) actors; None: fixed
    factory: Callable[[], Any] | None = None  # starts one more actor (autoscaled pools)
    work_s: float = 0.0  # actor-seconds spent on finished calls lately, and the videos they finished:
    work_videos: float = 0.0  # their ratio is one actor's rate
    last_way: int = 0  # the autoscaler's last change: +1 grew, -1 shrank, at plan number `last_plan`
    last_plan: int = -SETTLE_PLANS

    def __post_init__(self) -> None:
        n = len(self.actors)
        self.busy, self.healthy, self.retired, self.draining, self.nodes = [0] * n, [True] * n, [False] * n, \
            [False] * n, [""] * n
        self.progress = [None] * n
        self.gpus = [()] * n

    def live(self) -> list[int]:
        """Actors that take work now."""
        return [i for i in range(len(self.actors))
                if self.healthy[i] and not self.retired[i] and not self.draining[i]]

    def size(self) -> int:
        return sum(not r for r in self.retired)

    def free_actor(self, idle: bool = False) -> int | None:
        """The least busy live actor that can take another call (with `idle`, one running nothing), if any."""
        best = min(self.live(), key=self.busy.__getitem__, default=None)
        room = 1 if idle else IN_FLIGHT_PER_ACTOR
        return best if best is not None and self.busy[best] < room else None

    def waiting(self) -> bool:
        return bool(self.queue or self.retry)

    def capacity(self) -> int:
        return self.size() * self.batch_size * IN_FLIGHT_PER_ACTOR

    def staying(self) -> int:
        """Actors neither retired nor draining: the size the autoscaler plans from."""
        return sum(not r and not d for r, d in zip(self.retired, self.draining, strict=True))

    def add(self, actor: Any) -> int:
        """One more actor (not yet up): its index."""
        self.actors.append(actor)
        for column, value in ((self.busy, 0), (self.healthy, False), (self.retired, False), (self.draining, False),
                              (self.nodes, ""), (self.progress, None), (self.gpus, ())):
            column.append(value)  # type: ignore[attr-defined]
        return len(self.actors) - 1

    def rate(self) -> float | None:
        """Videos one working actor finishes per second, as measured lately."""
        return self.work_videos / self.work_s if self.work_s > 0 and self.work_videos > 0 else None


@dataclass
class _Call:
    pool: int
    actor: int
    batch: list[tuple[str, Any]]  # (video id, input reference or work ref)
    items: list[Any]  # one output reference per item (none from the last pool, none for a ping)
    deadline: float = float("inf")  # pings only: when to act on an actor not back (work calls: `Pool.progress`)
    ping: bool = False
    weight: int = 1  # an isolated retry fills its actor: nothing queued behind it can die with it
    timed_out: bool = False
    barrier: _Barrier | None = None  # a flush call: re-admitted videos wait for it


@dataclass
class _Barrier:
    """Re-admitted videos held until the actors of the pools before theirs have flushed their buffered
    checkpoints, the ones the videos are rebuilt from (a flush that fails, its actor gone too, counts as done:
    what it held is lost, and those videos come back short and are redone at the end of the run)."""

    left: int
    videos: list[tuple[deque[tuple[str, Any]], tuple[str, Any]]]


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


def _resources(amounts: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in amounts.items() if not k.startswith(("node:", "memory", "object_store_memory"))}


def _alive_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n.get("Alive")}


class StreamScheduler:
    """Feeds work refs into the first pool and moves each finished call's item references to the next one."""

    def __init__(self, pools: list[Pool], refs: Iterable[WorkRef],
                 on_pools: Callable[[dict[str, int]], None] | None = None,
                 restart_wait_s: float = RESTART_WAIT_S, clock: Callable[[], float] = time.monotonic,
                 autoscale_interval_s: float = AUTOSCALE_INTERVAL_S,
                 capacity: Callable[[], dict[str, float]] | None = None) -> None:
        self.pools = pools
        self.pending = refs if isinstance(refs, WorkQueue) else WorkQueue.of(refs)  # refs made as admitted
        self.calls: dict[Any, _Call] = {}
        self.admitted = 0
        self.videos: dict[str, WorkRef] = {}  # in-stream videos: their path and the checkpoints they have so far
        self.settled: dict[str, dict[str, str]] = {}  # in-stream videos no longer ok: the row they end with
        self.lost_at: dict[tuple[int, int], float] = {}  # (pool, actor) -> when it was lost
        self.check_at: dict[tuple[int, int], float] = {}  # (pool, actor) -> when to act if it is not back
        self.on_pools = on_pools
        self.restart_wait_s = restart_wait_s
        self.clock = clock
        self.autoscale_interval_s = autoscale_interval_s
        self.capacity = capacity or self._cluster_capacity
        self.plans = 0
        scaled = any(p.scale is not None for p in pools)
        self.plan_at = clock() + self._warm_interval() if scaled else float("inf")
        for index, pool in enumerate(pools):  # each actor's progress clock starts once it is up
            for actor in range(len(pool.actors)):
                self.calls[pool.actors[actor].ready.remote()] = _Call(index, actor, [], [], ping=True)
        self._report_pools()

    def run(self) -> Iterator[dict[str, str]]:
        import ray

        while self.pending or self.calls or any(p.waiting() for p in self.pools):
            self._plan_if_due()
            self._admit()
            self._dispatch()
            if all(c.ping for c in self.calls.values()):  # nothing running that could fill a partial batch
                self._dispatch(flush=True)
            if not self.calls:
                yield from self._abandon()
                continue
            soonest = min([c.deadline for c in self.calls.values()] + [at for _, _, at in self._busy_actors()]
                          + [self.plan_at])
            timeout = None if soonest == float("inf") else max(0.0, soonest - self.clock())
            ready, _ = ray.wait(list(self.calls), num_returns=1, timeout=timeout)
            for receipt in ready:
                yield from self._finish(receipt, self.calls.pop(receipt))
            self._expire()

    def _warm_interval(self) -> float:
        """While a pool is unmeasured, plans come WARM_PLANS times as often: each holds what it knows nothing of,
        and the captioner grows as soon as its first call has run long enough to bound it, not an interval later."""
        return self.autoscale_interval_s / WARM_PLANS

    def _plan_if_due(self) -> bool:
        """Re-plan the pools if it is time: every `autoscale_interval_s`, or every warm interval while an
        autoscaled pool has no finished call."""
        if self.clock() < self.plan_at:
            return False
        self._autoscale()
        warming = any(p.scale is not None and p.rate() is None for p in self.pools)
        self.plan_at = self.clock() + (self._warm_interval() if warming else self.autoscale_interval_s)
        return True

    def _admit(self) -> None:
        """Work refs into the first pool while the stream holds fewer items than the pools can work on."""
        limit = sum(p.capacity() for p in self.pools) + self.pools[0].batch_size
        while self.pending and self.admitted < limit:
            ref = self.pending.popleft()
            self.videos[ref.video_id] = replace(ref, done=list(ref.done))
            self.pools[0].queue.append((ref.video_id, ref))
            self.admitted += 1

    def _more_coming(self, index: int) -> bool:
        return bool(self.pending) or any(self.pools[i].waiting() for i in range(index)) or any(
            c.pool < index and not c.ping for c in self.calls.values())

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
        if pool.busy[actor] == 0 and pool.progress[actor] is not None:
            pool.progress[actor] = self.clock()  # idle until now: its clock starts with this call
        pool.busy[actor] += weight
        self.calls[refs[-1]] = _Call(index, actor, batch, refs[:-1], weight=weight)

    def _ping(self, index: int, actor: int) -> None:
        """Ask a restarting actor whether it is back; it gets work again once it answers."""
        pool = self.pools[index]
        pool.healthy[actor] = False
        self.lost_at.setdefault((index, actor), self.clock())
        deadline = self.check_at.setdefault((index, actor), self.clock() + self.restart_wait_s)
        self.calls[pool.actors[actor].ready.remote()] = _Call(index, actor, [], [], deadline, ping=True)

    def _finish(self, receipt: Any, call: _Call) -> Iterator[dict[str, str]]:
        import ray

        pool = self.pools[call.pool]
        if call.ping:
            yield from self._pinged(receipt, call)
            return
        if call.barrier is not None:
            self._flushed(call.barrier)
            return
        pool.busy[call.actor] -= call.weight
        started = pool.progress[call.actor]
        if started is not None:
            pool.progress[call.actor] = self.clock()
        try:
            answer = ray.get(receipt)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.OutOfMemoryError, ray.exceptions.ObjectLostError) as exc:
            yield from self._lost(call, exc)
            return
        except ray.exceptions.RayError as exc:  # the call itself raised: not a worker's loss, no retry
            for vid, _ in call.batch:
                yield self._leave(vid, _lost_row(vid, pool, exc, "worker failed"))
            return
        finally:
            self._retire_if_drained(call.pool, call.actor)
        pool.nodes[call.actor] = answer["node"]
        if started is not None:  # the actor's time on this call (calls run one after another on an actor),
            pool.work_s += max(0.0, self.clock() - started - answer.get("setup_s", 0.0))  # less model loading
            pool.work_videos += len(call.batch)
        if call.pool == len(self.pools) - 1:
            for row in answer["rows"]:
                yield self._leave(row["video_id"], {k: str(row[k]) for k in STATUS_KEYS})
            return
        for (vid, _), done, row in zip(call.batch, answer["done"], answer["rows"], strict=True):
            self.videos[vid].done.extend((stage, shard) for stage, shard in done)
            if row["status"] != "ok":
                self.settled[vid] = {k: str(row[k]) for k in STATUS_KEYS}
        self.pools[call.pool + 1].queue.extend(
            (vid, ref) for (vid, _), ref in zip(call.batch, call.items, strict=True))

    def _leave(self, vid: str, row: dict[str, str]) -> dict[str, str]:
        """A video's last row: it leaves the stream."""
        self.admitted -= 1
        self.videos.pop(vid, None)
        self.settled.pop(vid, None)
        return row

    def _lost(self, call: _Call, exc: BaseException) -> Iterator[dict[str, str]]:
        """Each video of a lost call re-enters its pool from its checkpoints; one alone when it may be the cause."""
        import ray

        pool = self.pools[call.pool]
        node = pool.nodes[call.actor]
        node_lost = isinstance(exc, ray.exceptions.ObjectLostError) or bool(node and node not in _alive_nodes())
        why = f"call timed out after {pool.call_timeout_s:g} s" if call.timed_out else "worker lost"
        log.warning("pool %s: %s (%s); re-admitting its %d video(s) from their checkpoints", pool.name,
                    "a node was lost" if node_lost else why, _first_line(exc), len(call.batch))
        pool.progress[call.actor] = None
        if pool.healthy[call.actor] and not pool.retired[call.actor]:
            self._ping(call.pool, call.actor)
        back = []
        for vid, _ in call.batch:
            if vid in self.settled:  # no more work to do: the row it already has stands
                yield self._leave(vid, self.settled[vid])
            elif call.weight == IN_FLIGHT_PER_ACTOR and not node_lost:  # it ran alone: this video is the cause
                yield self._leave(vid, _lost_row(vid, pool, exc, why))
            else:
                ref = replace(self.videos[vid], done=list(self.videos[vid].done))
                back.append((pool.queue if node_lost else pool.retry, (vid, ref)))
        self._readmit(call.pool, back)

    def _readmit(self, index: int, back: list[tuple[deque[tuple[str, Any]], tuple[str, Any]]]) -> None:
        """Re-admitted videos enter their queues once every live actor before their pool has flushed."""
        upstream = [(i, a) for i in range(index) for a in range(len(self.pools[i].actors))
                    if self.pools[i].healthy[a] and not self.pools[i].retired[a]] if back else []
        if not upstream:
            for queue, entry in back:
                queue.append(entry)
            return
        barrier = _Barrier(len(upstream), back)
        for i, a in upstream:
            self.calls[self.pools[i].actors[a].flush.remote()] = _Call(i, a, [], [], barrier=barrier)

    def _flushed(self, barrier: _Barrier) -> None:
        barrier.left -= 1
        if barrier.left == 0:
            for queue, entry in barrier.videos:
                queue.append(entry)

    def _pinged(self, receipt: Any, call: _Call) -> Iterator[dict[str, str]]:
        import ray

        pool = self.pools[call.pool]
        if pool.retired[call.actor]:
            return
        try:
            answer = ray.get(receipt)
            node, gpus = (answer, ()) if isinstance(answer, str) else answer
            pool.nodes[call.actor], pool.gpus[call.actor] = node, tuple(gpus)
            pool.healthy[call.actor] = True
            pool.progress[call.actor] = self.clock()
            self.lost_at.pop((call.pool, call.actor), None)
            self.check_at.pop((call.pool, call.actor), None)
        except ray.exceptions.ActorUnavailableError:  # still restarting (Ray answers after its own wait)
            self._ping(call.pool, call.actor)
        except ray.exceptions.RayError as exc:  # gone for good
            log.error("pool %s: an actor is gone: %s", pool.name, exc)
            pool.gone = _first_line(exc)
            self._retire(call.pool, call.actor)
        yield from ()

    def _busy_actors(self) -> list[tuple[int, int, float]]:
        """(pool, actor, deadline) of every actor that is up and working."""
        return [(i, a, at + pool.call_timeout_s) for i, pool in enumerate(self.pools)
                for a, at in enumerate(pool.progress) if at is not None and pool.busy[a] > 0]

    def _expire(self) -> None:
        """Actors busy past their deadline: killed (so restarted), their calls lost; actors not back in time:
        make room."""
        import ray

        now = self.clock()
        for index, actor, deadline in self._busy_actors():
            if deadline > now:
                continue
            pool = self.pools[index]
            log.warning("pool %s: a call ran past call_timeout_s=%g; restarting its actor", pool.name,
                        pool.call_timeout_s)
            pool.progress[actor] = None  # its receipts (the call, the one queued behind it) fail once it is down
            for call in self.calls.values():
                if (call.pool, call.actor) == (index, actor) and not call.ping:
                    call.timed_out = True
            ray.kill(pool.actors[actor], no_restart=False)
        for ref, call in list(self.calls.items()):
            if call.ping and call.deadline <= now:
                del self.calls[ref]
                if not self.pools[call.pool].retired[call.actor]:
                    self._cannot_restart(call.pool, call.actor)

    def _cannot_restart(self, index: int, actor: int) -> None:
        """An actor whose restart has not been placed in `restart_wait_s`: with others in its pool it leaves;
        as the pool's last, another pool with the same resources gives one up (drained), and it waits on."""
        pool = self.pools[index]
        since = self.clock() - self.lost_at.get((index, actor), self.clock())
        if pool.live():
            log.warning("pool %s: an actor could not restart in %.0f s; the pool shrinks to %d", pool.name, since,
                        pool.size() - 1)
            self._retire(index, actor)
            return
        donors = [i for i, p in enumerate(self.pools) if i != index and len(p.live()) > 1 and not any(p.draining)
                  and all(p.demand.get(k, 0.0) >= v for k, v in pool.demand.items() if v)]
        if donors:
            donor = max(donors, key=lambda i: len(self.pools[i].live()))
            giver = self.pools[donor]
            victim = min(giver.live(), key=giver.busy.__getitem__)
            log.warning("pool %s has no actor left and cannot restart one; pool %s gives one up", pool.name,
                        giver.name)
            giver.draining[victim] = True
            self._retire_if_drained(donor, victim)
        elif since > 10 * self.restart_wait_s:
            pool.gone = f"no actor could be restarted in {since:.0f} s: the cluster lacks {pool.demand}"
            self._retire(index, actor)
            return
        self.check_at[(index, actor)] = self.clock() + self.restart_wait_s
        self._ping(index, actor)

    def _retire_if_drained(self, index: int, actor: int) -> None:
        pool = self.pools[index]
        if pool.draining[actor] and pool.busy[actor] == 0 and not pool.retired[actor]:
            self._retire(index, actor, graceful=pool.healthy[actor])

    def _retire(self, index: int, actor: int, graceful: bool = False) -> None:
        """Let an actor go for good. A drained, healthy one is asked to flush its buffered checkpoints and then to
        exit, both queued behind anything it still runs (the loop does not wait); any other is killed."""
        import ray

        pool = self.pools[index]
        pool.retired[actor] = True
        pool.healthy[actor] = pool.draining[actor] = False
        self.lost_at.pop((index, actor), None)
        self.check_at.pop((index, actor), None)
        handle = pool.actors[actor]
        if graceful:
            handle.flush.remote()
            handle.__ray_terminate__.remote()
        else:
            ray.kill(handle, no_restart=True)
        self._report_pools()

    def _autoscale(self) -> None:
        """Resize the autoscaled pools to the plan (`autoscale.plan`): start actors, or drain the least busy."""
        in_calls = [0] * len(self.pools)
        for call in self.calls.values():
            in_calls[call.pool] += len(call.batch)
        loads, ahead = [], len(self.pending)
        for index, pool in enumerate(self.pools):
            queued = len(pool.queue) + len(pool.retry) + in_calls[index]
            size = pool.staying()
            low, high = pool.scale if pool.scale is not None else (size, size)
            rate = pool.rate()
            loads.append(PoolLoad(pool.name, pool.demand, size, low, high, rate, queued, ahead,
                                  held=pool.batch_size * IN_FLIGHT_PER_ACTOR, first=index == 0,
                                  bound=self._rate_bound(index) if rate is None else None))
            ahead += queued
            pool.work_s, pool.work_videos = pool.work_s / 2, pool.work_videos / 2  # recent calls weigh most
        capacity = self.capacity()
        sizes = plan(loads, capacity)
        self.plans += 1
        now = [load.size for load in loads]
        if fits(loads, now, capacity):  # while the cluster holds every pool, none turns back too soon
            sizes = [now[i] if (size > now[i]) != (pool.last_way > 0) and self.plans - pool.last_plan < SETTLE_PLANS
                     else size for i, (pool, size) in enumerate(zip(self.pools, sizes, strict=True))]
            if not fits(loads, sizes, capacity):  # a pool held back still holds what another would grow into
                sizes = [min(size, n) for size, n in zip(sizes, now, strict=True)]
        changed = False
        for index, (pool, size) in enumerate(zip(self.pools, sizes, strict=True)):
            if pool.scale is None or size == pool.staying():
                continue
            pool.last_way, pool.last_plan = (1 if size > pool.staying() else -1), self.plans
            changed = True
            log.info("pool %s: %d -> %d actors (%.2f videos/s per actor, %d queued)", pool.name, pool.staying(),
                     size, pool.rate() or 0.0, loads[index].queued)
            while pool.staying() < size and pool.factory is not None:
                actor = pool.add(pool.factory())
                self._ping(index, actor)
            while pool.staying() > size:
                self._drain_one(index)
        if changed:
            self._report_pools()

    def _rate_bound(self, index: int) -> float | None:
        """The fastest a pool with no finished call can be (`PoolLoad.bound`); None before any call has run a
        warm-up plan interval: a first call 0.4 s old (imports still loading on starting actors) bounded a fast
        ingest pool at 2.5 videos/s, and the plan grew it by the most it could."""
        pool, now, seen, best = self.pools[index], self.clock(), set(), None
        for call in self.calls.values():  # in submission order: an actor's first call is the one running
            if call.pool != index or call.ping or call.barrier is not None or call.actor in seen:
                continue
            seen.add(call.actor)
            started = pool.progress[call.actor]
            if started is not None and now - started >= self._warm_interval():
                best = max(best or 0.0, len(call.batch) / (now - started))
        return best

    def _cluster_capacity(self) -> dict[str, float]:
        """What the autoscaler may plan with: what is free on the live nodes plus what our actors hold (on a
        shared cluster other jobs keep theirs; a lost node takes its share away)."""
        import ray

        total = _resources(ray.available_resources())
        for pool in self.pools:  # starting ones too: Ray has set their share aside before they answer
            held = sum(not gone for gone in pool.retired)
            for resource, amount in pool.demand.items():
                total[resource] = total.get(resource, 0.0) + amount * held
        cluster = _resources(ray.cluster_resources())
        return {k: min(v, cluster.get(k, 0.0)) for k, v in total.items()}

    def _drain_one(self, index: int) -> None:
        """Drain the actor whose leaving frees most: one not started yet; else one on a GPU that other pools'
        actors share least, then that the fewest staying actors share, so that a pool shrinking by several
        empties whole GPUs for whole-GPU stages (draining by the emptiest GPU alone left two halves of two GPUs
        held, and the captioner it was shrunk for could not be placed); else the idlest."""
        held: dict[tuple[str, str], float] = {}  # every staying actor's share per GPU, and this pool's alone
        own: dict[tuple[str, str], float] = {}
        for p, pool in enumerate(self.pools):
            for a in range(len(pool.actors)):
                if not pool.retired[a] and not pool.draining[a]:
                    for gpu in pool.gpus[a]:
                        key, share = (pool.nodes[a], gpu), pool.demand.get("GPU", 0.0) / len(pool.gpus[a])
                        held[key] = held.get(key, 0.0) + share
                        if p == index:
                            own[key] = own.get(key, 0.0) + share
        pool = self.pools[index]
        staying = [a for a in range(len(pool.actors)) if not pool.retired[a] and not pool.draining[a]]

        def frees(a: int) -> tuple[bool, float, float, int]:
            keys = [(pool.nodes[a], g) for g in pool.gpus[a]]
            return (pool.healthy[a], sum(held[k] - own[k] for k in keys), sum(held[k] for k in keys), pool.busy[a])

        victim = min(staying, key=frees)
        pool.draining[victim] = True
        self._retire_if_drained(index, victim)

    def _report_pools(self) -> None:
        if self.on_pools is not None:
            self.on_pools({p.name: p.staying() for p in self.pools})

    def _abandon(self) -> Iterator[dict[str, str]]:
        """Every actor of a pool is gone for good: what waits for it ends as errors instead of waiting forever."""
        for pool in self.pools:
            while pool.waiting() and pool.size() == 0:
                vid, _ = (pool.retry or pool.queue).popleft()
                yield self._leave(vid, _lost_row(vid, pool, RuntimeError(
                    f"no live actor left in pool {pool.name}: {pool.gone}")))
        first = self.pools[0]
        while self.pending and first.size() == 0:
            ref = self.pending.popleft()
            yield _lost_row(ref.video_id, first, RuntimeError(f"no live actor left in pool {first.name}: {first.gone}"))
