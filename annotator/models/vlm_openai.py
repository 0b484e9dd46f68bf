"""Client for an OpenAI-compatible chat endpoint (`vllm serve <model>`), frames sent as JPEG image parts.

Requests run on one asyncio loop with at most `max_concurrency` in flight. Preparing a request (decode,
resize, JPEG-encode its frames) happens in a thread pool, so requests keep flowing while the next ones
are prepared and the server is not left idle. 408/409/429/5xx answers, timeouts and connection errors
are retried with exponential backoff (waiting at least what a `Retry-After` header asks), and so are 200
answers whose body arrived cut or garbled (not UTF-8, not whole JSON); any other failure, running out of
retries, or running out of the request budget becomes that request's error, naming the last fault.
`endpoint` may list several replicas of the model (`endpoints.Endpoints`): each request goes to the healthy one
with the fewest in flight, and a retry after a refused connection or a 5xx goes at once to another replica when
there is one. `counters` says what happened, per endpoint too, for the run manifest.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cv2
import httpx
import numpy as np

from annotator import frames
from annotator.models.endpoints import Endpoints
from annotator.models.protocols import CaptionRequest

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
Messages = list[dict[str, Any]]


class EndpointError(Exception):
    """The endpoint refused or kept failing; the message names the URL and the last fault."""


class BrokenBody(ValueError):
    """A 200 answer whose body is not UTF-8 or not whole JSON: a proxy or server fault, so it is retried."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def completion_text(body: bytes) -> tuple[str, int]:
    """The message content of a chat completion body and its output tokens (`usage.completion_tokens`, 0 when
    the server does not say); names how the body is broken when it is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BrokenBody("not_utf8", f"reply is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        kind = "truncated_json" if cut else "malformed_json"
        raise BrokenBody(kind, f"reply is {kind.replace('_', ' ')} ({exc.msg} at char {exc.pos} "
                               f"of {len(text)}): {text[:80]!r}") from None
    try:
        content = data["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"response is not a chat completion: {text[:200]}") from None
    usage = data.get("usage") if isinstance(data, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return content, tokens if isinstance(tokens, int) else 0


def retry_after(value: str | None) -> float:
    """Seconds a 429/503 `Retry-After` header asks for (delta-seconds or an HTTP date); 0 when absent."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def jpeg_data_url(frame: np.ndarray, max_side: int | None, quality: int = 90) -> str:
    h, w = frame.shape[:2]
    scale = max_side / max(h, w) if max_side else 1.0
    if scale < 1:
        if (k := int(1 / scale)) >= 2:  # integer-factor area pass first: OpenCV's fast path, half the cost
            frame = cv2.resize(frame, (w // k, h // k), interpolation=cv2.INTER_AREA)
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return data_url(frames.encode_jpeg(frame, quality))


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()


def jpeg_messages(jpegs: list[bytes], prompt: str) -> Messages:
    """The same request from JPEG bytes as they are (the frame store's): nothing decoded or re-encoded."""
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": data_url(j)}} for j in jpegs
    ]
    parts.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": parts}]


def chat_messages(request: CaptionRequest, image_max_side: int | None) -> Messages:
    """OpenAI chat format, frames as JPEG data URLs: what `vllm serve` and vLLM's own chat parser both read."""
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": jpeg_data_url(f, image_max_side)}} for f in request.frames
    ]
    parts.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": parts}]


@dataclass
class Reply:
    """One job's outcome: its text or the exception it ended with, and what it took (requests, retries...)."""

    text: str | None = None
    error: Exception | None = None
    counters: Counter[str] = field(default_factory=Counter)


class OpenAIChatClient:
    def __init__(self, endpoint: str | Sequence[str], model: str, api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 60.0, max_retries: int = 4,
                 backoff_s: float = 1.0, max_concurrency: int = 8, image_max_side: int | None = 448,
                 max_requests: int | None = None, prepare_threads: int = 2,
                 max_retry_after_s: float = 300.0) -> None:
        self.endpoints = Endpoints([endpoint] if isinstance(endpoint, str) else endpoint)
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.image_max_side = image_max_side
        self.max_requests = max_requests  # budget for this client's lifetime, retries included
        self.prepare_threads = prepare_threads
        self.max_retry_after_s = max_retry_after_s  # a longer Retry-After ends the request instead of stalling
        self._headers = {"Authorization": f"Bearer {os.environ.get(api_key_env, 'EMPTY')}"}
        self.counters: Counter[str] = Counter()

    def messages(self, request: CaptionRequest) -> Messages:
        return chat_messages(request, self.image_max_side)

    def _count(self, reply: Reply, key: str) -> None:
        reply.counters[key] += 1
        self.counters[key] += 1

    async def _post(self, client: httpx.AsyncClient, messages: Messages, extra: dict[str, Any] | None,
                    reply: Reply) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, **(extra or {})}
        last, wait, previous, url = "", 0.0, "", ""
        for attempt in range(self.max_retries + 1):
            base = self.endpoints.pick(avoid=previous)
            if attempt:
                self._count(reply, "retries")
                if base == previous:  # another replica takes a retry at once; the same one gets its backoff
                    await asyncio.sleep(max(wait, self.backoff_s * 2 ** (attempt - 1)))
                    base = self.endpoints.pick(avoid=previous)
            url = base + "/chat/completions"
            previous = base
            if self.max_requests is not None and self.counters["requests"] >= self.max_requests:
                raise EndpointError(f"{url}: request budget of {self.max_requests} used up (last: {last})"
                                    if last else f"{url}: request budget of {self.max_requests} used up")
            self._count(reply, "requests")
            wait, fault = 0.0, False
            self.endpoints.start(base)
            self._count(reply, f"requests@{base}")
            try:
                response = await client.post(url, json=body)
            except httpx.TimeoutException as exc:
                self._count(reply, "timeouts")
                last = f"timeout after {self.timeout_s:g} s ({type(exc).__name__})"
                # slow is not down (a long generation is no reason to bench a replica): no fault
                continue
            except httpx.TransportError as exc:
                self._count(reply, "connection_errors")
                fault = True
                last = f"connection error ({type(exc).__name__}{f': {exc}' if str(exc) else ''})"
                continue
            else:
                fault = response.status_code >= 500
            finally:
                if fault:
                    self._count(reply, f"faults@{base}")
                if self.endpoints.finish(base, fault):
                    self._count(reply, f"benched@{base}")
            if response.status_code in RETRY_STATUS:
                self._count(reply, f"http_{response.status_code}")
                last = f"HTTP {response.status_code}"
                wait = retry_after(response.headers.get("Retry-After"))
                if wait > self.max_retry_after_s:
                    raise EndpointError(f"{url}: HTTP {response.status_code} asks to retry after {wait:g} s, "
                                        f"more than max_retry_after_s={self.max_retry_after_s:g}")
                continue
            if response.status_code != 200:
                self._count(reply, f"http_{response.status_code}")
                raise EndpointError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
            try:
                text, tokens = completion_text(response.content)
            except BrokenBody as exc:  # cut or garbled in transit: worth another try
                self._count(reply, exc.kind)
                last = str(exc)
                continue
            except EndpointError as exc:
                raise EndpointError(f"{url}: {exc}") from None
            reply.counters["output_tokens"] += tokens
            self.counters["output_tokens"] += tokens
            return text
        raise EndpointError(f"{url}: gave up after {self.max_retries + 1} attempts (last: {last})")

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        return httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers, limits=limits)

    async def _run(self, jobs: list[Callable[[], Messages]], extra: dict[str, Any] | None) -> list[Reply]:
        slots = asyncio.Semaphore(self.max_concurrency)
        # prepare just ahead of the free slots: preparing everything at once would hold every job's
        # frames in memory and starve the event loop of CPU while the first requests wait to be sent
        ahead = asyncio.Semaphore(self.max_concurrency + self.prepare_threads)
        loop = asyncio.get_running_loop()
        async with self._client() as client:
            with ThreadPoolExecutor(self.prepare_threads) as pool:

                async def one(prepare: Callable[[], Messages]) -> Reply:
                    reply = Reply()
                    try:
                        async with ahead:
                            messages = await loop.run_in_executor(pool, prepare)
                            async with slots:
                                reply.text = await self._post(client, messages, extra, reply)
                    except Exception as exc:  # noqa: BLE001 - becomes this item's error
                        reply.error = exc
                    return reply

                return list(await asyncio.gather(*(one(job) for job in jobs)))

    def run(self, jobs: list[Callable[[], Messages]], extra: dict[str, Any] | None = None) -> list[Reply]:
        """Prepare (in threads) and send every job; one reply per job, in order."""
        return asyncio.run(self._run(jobs, extra))

    def caption(self, requests: list[CaptionRequest]) -> list[str | Exception]:
        replies = self.run([lambda r=r: self.messages(r) for r in requests])
        return [r.error if r.error is not None else r.text or "" for r in replies]
