"""Client for an OpenAI-compatible chat endpoint (`vllm serve <model>`), frames sent as JPEG image parts.

Requests run on a bounded thread pool; 429, 5xx, timeouts and connection errors are retried with
exponential backoff; any other failure, or running out of retries, becomes that request's error.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import httpx
import numpy as np

from annotator.models.protocols import CaptionRequest

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(Exception):
    """The endpoint refused or kept failing; the message names the URL and the last status."""


def jpeg_data_url(frame: np.ndarray, max_side: int, quality: int = 90) -> str:
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


class OpenAIChatClient:
    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 60.0, max_retries: int = 4,
                 backoff_s: float = 1.0, max_concurrency: int = 8, image_max_side: int = 448) -> None:
        self.url = endpoint.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.image_max_side = image_max_side
        key = os.environ.get(api_key_env, "EMPTY")
        self._client = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {key}"},
                                    limits=httpx.Limits(max_connections=max_concurrency))
        self._lock = threading.Lock()
        self.retries = 0  # how many retries this client made, for the manifest

    def close(self) -> None:
        self._client.close()

    def messages(self, request: CaptionRequest) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": jpeg_data_url(f, self.image_max_side)}}
            for f in request.frames
        ]
        parts.append({"type": "text", "text": request.prompt})
        return [{"role": "user", "content": parts}]

    def complete(self, messages: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, **(extra or {})}
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUS:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise EndpointError(f"{self.url}: HTTP {response.status_code}: {response.text[:200]}")
            try:
                return response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise EndpointError(f"{self.url}: response is not a chat completion: {response.text[:200]}") from None
        raise EndpointError(f"{self.url}: gave up after {self.max_retries + 1} attempts (last: {last})")

    def caption(self, requests: list[CaptionRequest]) -> list[str | Exception]:
        def one(request: CaptionRequest) -> str | Exception:
            try:
                return self.complete(self.messages(request))
            except Exception as exc:  # noqa: BLE001 - becomes this item's error
                return exc

        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(one, requests))
