"""Several replicas of one served model: which gets the next request, which sits out, and whether any serves it.

A cluster runs several `vllm serve` replicas. Requests go to the healthy endpoint with the fewest in flight; an
endpoint that refuses connections or answers 5xx `bench_after` times in a row sits out `cooldown_s`, after which
it gets requests again (the first one is its probe: one more fault benches it again). When every endpoint is
benched, the one whose cool-down ends first is tried anyway: a request never waits on the bench itself.

`preflight` asks each endpoint for its models (`GET /v1/models`) before a run admits its first video: a server
that was never started, or serves another model, is then one line at start, not one error row per video.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx


class EndpointUnavailable(Exception):
    """No endpoint of a served stage answers, or none serves its model; the message names the URLs and model."""


class Endpoints:
    def __init__(self, urls: Sequence[str], bench_after: int = 3, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("no endpoint given")
        self.urls = [u.rstrip("/") for u in urls]
        self.bench_after = bench_after
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.in_flight = dict.fromkeys(self.urls, 0)
        self.faults_in_a_row = dict.fromkeys(self.urls, 0)
        self.benched_until = dict.fromkeys(self.urls, 0.0)

    def healthy(self) -> list[str]:
        now = self.clock()
        return [u for u in self.urls if self.benched_until[u] <= now]

    def pick(self, avoid: str = "") -> str:
        """The healthy endpoint with the fewest requests in flight (the first listed among equals), other than
        `avoid` (the one a retry's request just failed on) when there is another."""
        healthy = [u for u in self.healthy() if u != avoid] or self.healthy()
        if not healthy:
            return min(self.urls, key=self.benched_until.__getitem__)
        return min(healthy, key=self.in_flight.__getitem__)

    def start(self, url: str) -> None:
        self.in_flight[url] += 1

    def finish(self, url: str, fault: bool) -> bool:
        """A request to `url` ended; `fault`: the endpoint refused the connection or answered 5xx. True when this
        fault benched it."""
        self.in_flight[url] -= 1
        if not fault:
            self.faults_in_a_row[url] = 0
            return False
        self.faults_in_a_row[url] += 1
        if self.faults_in_a_row[url] >= self.bench_after and self.benched_until[url] <= self.clock():
            self.benched_until[url] = self.clock() + self.cooldown_s
            self.faults_in_a_row[url] = self.bench_after - 1  # after the cool-down, one more fault benches again
            return True
        return False


def served_models(url: str, headers: dict[str, str], timeout_s: float) -> list[str]:
    """The model ids an OpenAI-compatible server lists; raises with a one-line reason when it does not answer."""
    try:
        response = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=timeout_s)
    except httpx.TransportError as exc:
        raise EndpointUnavailable(f"{url} does not answer ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise EndpointUnavailable(f"{url}/models answered HTTP {response.status_code}")
    try:
        return [str(m["id"]) for m in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise EndpointUnavailable(f"{url}/models is not an OpenAI model list: {response.text[:120]!r}") from None


def preflight(stage: str, urls: Sequence[str], model: str, headers: dict[str, str],
              timeout_s: float = 10.0) -> list[str]:
    """The endpoints that serve `model`; raises EndpointUnavailable naming every URL when none does."""
    good, faults = [], []
    for url in urls:
        try:
            models = served_models(url, headers, timeout_s)
        except EndpointUnavailable as exc:
            faults.append(str(exc))
            continue
        if model in models:
            good.append(url)
        else:
            faults.append(f"{url} serves {', '.join(models) or 'no model'}, not {model}")
    if not good:
        raise EndpointUnavailable(f"stage {stage}: no endpoint serves model {model}: {'; '.join(faults)} "
                                  "(start the server, e.g. `vllm serve MODEL`, or fix the stage's endpoint/model)")
    return good
