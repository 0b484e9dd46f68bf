"""Pool sizes from measured throughput: the autoscaler, apart from the stream loop (Xenna's shape).

The loop measures, per pool, how many videos one actor finishes per second of work (model loading left out)
and how many videos wait for it or are still upstream of it; every `autoscale_interval_s` it asks `plan` for new
sizes and grows or drains its pools to match. `plan` is pure arithmetic, so it is tested without Ray.

The plan: the fixed pools keep their size; the autoscaled ones share what is left of the cluster. It finds the
largest stream rate T (videos/s) that every pool can sustain at once, where a pool needs `ceil((T + drain) / rate)`
actors and `drain` clears, within `horizon_s`, a queue that outgrew what its minimum holds (the same share of each
backlog, as much as fits, when the backlogs alone would overfill the cluster: 1000 queued captions asked for 67
caption actors on 8 GPUs, most of which could never be placed); T is no faster than the first pool can let the
remaining work in, nor than a pool with little work left can pass on (at the end of a run, a fast pool after the
tracker's last videos gains nothing from more actors). A pool never gets more actors than its work can occupy, and
one with no work left falls to its minimum. Resources still free after that go, one actor at a time, to the pool
(past the first) whose work would take longest to clear, while its queue has work for one more actor. A pool with no
call finished yet is planned from what its running calls bound: none of them has ended, so one actor is at most as
fast as its call's videos over the time the call has run, and that bound may only grow the pool; with no call
running either, there is nothing to go on and the pool keeps its size (guessing it as fast as the others shrank a
slow captioner at the start of a run), and a pool before it sizes to its own queue alone. An actor's share is what
the stage asks (`gpus: 0.5`): shares never pack past what the cluster holds, as every resource is checked. A pool
grows per plan by at most 4 actors or its size, whichever is more, so a guess from one slow first call cannot start
a node's worth of processes at once (14 on 2 cores, in a bench run); a minimum is reached at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

AUTOSCALE_INTERVAL_S = 10.0
HORIZON_S = 30.0
GROWTH = 4  # a pool grows per plan by at most this or its size (Kubernetes' default scale-up step)


@dataclass
class PoolLoad:
    """What the planner knows of one pool."""

    name: str
    demand: dict[str, float]  # one actor's resources
    size: int  # actors now (draining ones excluded)
    lo: int  # fixed pools: lo == hi == size
    hi: int | None  # None: as many as the cluster holds
    rate: float | None = None  # videos per second per working actor, measured; None before the first call ends
    queued: int = 0  # videos waiting for it or in its calls
    upstream: int = 0  # videos that have still to reach it
    held: int = 2  # videos one actor holds at once (batch x calls in flight): a queue beyond that is a backlog
    first: bool = False  # its queue is the input: never a backlog to drain, never an extra actor
    bound: float | None = None  # unmeasured: the most its running calls allow (videos over seconds so far)

    @property
    def fixed(self) -> bool:
        return self.hi is not None and self.lo == self.hi

    def work(self) -> int:
        return self.queued + self.upstream


def fits(loads: list[PoolLoad], sizes: list[int], capacity: dict[str, float]) -> bool:
    """Whether pools of these sizes fit the cluster: every resource in total, and GPU shares packed per GPU."""
    for resource, total in capacity.items():
        used = sum(n * load.demand.get(resource, 0.0) for n, load in zip(sizes, loads, strict=True))
        if used > total + 1e-9:
            return False
    shares = [load.demand.get("GPU", 0.0) for n, load in zip(sizes, loads, strict=True) for _ in range(n)]
    return packs([s for s in shares if s > 0], int(capacity.get("GPU", 0.0) + 1e-9))


def packs(shares: list[float], gpus: int) -> bool:
    """Whether actors of these GPU shares fit on `gpus` GPUs: a share of 1 or more takes whole GPUs, fractions
    share one GPU each (first fit, largest first), never more than it holds."""
    free = gpus - sum(math.ceil(s - 1e-9) for s in shares if s >= 1)
    if free < 0:
        return False
    bins: list[float] = []
    for share in sorted((s for s in shares if s < 1), reverse=True):
        for i, room in enumerate(bins):
            if room >= share - 1e-9:
                bins[i] -= share
                break
        else:
            if len(bins) == free:
                return False
            bins.append(1.0 - share)
    return True


def _clamp(n: int, load: PoolLoad) -> int:
    n = max(n, load.lo)
    return min(n, load.hi) if load.hi is not None else n


def _unmeasured(load: PoolLoad) -> PoolLoad:
    """A pool with no finished call: planned at its bound, never below its size; held, without one."""
    if load.rate is not None or load.fixed:
        return load
    if load.bound is None:
        held = _clamp(load.size, load)
        return replace(load, lo=held, hi=held)
    return replace(load, rate=load.bound, lo=_clamp(load.size, load))


def plan(loads: list[PoolLoad], capacity: dict[str, float], horizon_s: float = HORIZON_S) -> list[int]:
    """New sizes, one per pool, within `capacity` (resource -> total). Holding the unmeasured pools must not
    keep a smaller cluster overfilled: then they are planned like the others, at their bound or the median."""
    cautious = [_unmeasured(load) for load in loads]
    held = [not load.fixed and load.rate is None and load.bound is None for load in loads]
    sizes = _plan(cautious, capacity, horizon_s, blind=[any(held[i + 1 :]) for i in range(len(loads))])
    if not fits(cautious, sizes, capacity):
        sizes = _plan([replace(load, rate=load.rate or load.bound) for load in loads], capacity, horizon_s)
    return [min(n, max(load.lo, load.size + max(GROWTH, load.size))) for load, n in zip(loads, sizes, strict=True)]


def _plan(loads: list[PoolLoad], capacity: dict[str, float], horizon_s: float,
          blind: list[bool] | None = None) -> list[int]:
    """`blind`: per pool, whether a pool after it is held (nothing known of it). Such a pool sizes to its own
    queue, not to the work still upstream of it: how fast the held pool takes that work is not known, and the
    plan's stream rate is not bounded by it (a fast ingest pool was grown by the most it could, its queue empty,
    while the captioner after it had not started a call)."""
    blind = blind or [False] * len(loads)
    known = sorted(load.rate for load in loads if load.rate)
    default = known[len(known) // 2] if known else 1.0
    rates = [load.rate or default for load in loads]

    def drain(load: PoolLoad) -> float:
        if load.first:
            return 0.0
        return max(0, load.queued - load.lo * load.held) / horizon_s  # not its size now: that would oscillate

    def sizes_at(rate: float, share: float = 1.0) -> list[int]:
        out = []
        for load, per_actor, unsure in zip(loads, rates, blind, strict=True):
            if load.fixed:
                out.append(_clamp(load.size, load))
            elif not load.work():
                out.append(_clamp(0, load))
            else:  # never more actors than its work can occupy
                wanted = math.ceil((rate + share * drain(load)) / per_actor - 1e-9)
                occupies = load.queued if unsure else load.work()
                out.append(_clamp(min(wanted, math.ceil(occupies / load.held)), load))
        return out

    floor = sizes_at(0.0, share=0.0)
    if not fits(loads, floor, capacity):
        return floor  # the minimums alone overfill the cluster: nothing to plan (a lost node shrinks them)
    share = 1.0
    if not fits(loads, sizes_at(0.0), capacity):  # the backlogs alone would overfill it: drain what fits, evenly
        share = _largest(1.0, lambda s: fits(loads, sizes_at(0.0, s), capacity))
    capped = [load.hi * load.rate for load in loads
              if load.hi is not None and load.rate]  # a bounded pool bounds the stream, once measured
    capped += [math.ceil(load.work() / load.held) * rate for load, rate in zip(loads, rates, strict=True)
               if load.work() and not load.first and not load.fixed]  # as does one with little work left
    source = loads[0]  # and nothing flows faster than the first pool can let its remaining work in
    sources = source.size if source.fixed else _clamp(math.ceil(source.work() / source.held), source)
    top = min([max(rates) * 1000.0, sources * rates[0], *capped])
    sizes = sizes_at(_largest(top, lambda rate: fits(loads, sizes_at(rate, share), capacity)), share)
    while True:  # what is left: one actor at a time to the pool whose queue takes longest to clear
        best, best_wait = None, 0.0
        for i, load in enumerate(loads):
            if load.fixed or load.first or (load.hi is not None and sizes[i] >= load.hi):
                continue
            if load.queued <= sizes[i] * load.held:
                continue  # nothing for another actor to do now
            wait = load.work() / (sizes[i] * rates[i]) if sizes[i] else math.inf
            trial = [*sizes[:i], sizes[i] + 1, *sizes[i + 1 :]]
            if wait > best_wait and fits(loads, trial, capacity):
                best, best_wait = i, wait
        if best is None:
            return sizes
        sizes[best] += 1


def _largest(high: float, ok: Callable[[float], bool], steps: int = 40) -> float:
    """The largest value in [0, high] that `ok` accepts, by bisection (sizes only grow with it; 0 is accepted)."""
    low = 0.0
    for _ in range(steps):
        mid = (low + high) / 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low
