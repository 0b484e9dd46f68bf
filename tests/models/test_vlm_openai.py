"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from annotator.models.protocols import CaptionRequest
from annotator.models.vlm_openai import EndpointError, OpenAIChatClient
from annotator.testing.fake_server import FakeServer


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FakeServer]:
    srv = FakeServer(getattr(request, "param", []))
    yield srv
    srv.close()


def frames(n: int = 3) -> np.ndarray:
    return (np.random.default_rng(0).random((n, 90, 160, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("server", [[503]], indirect=True)
def test_request_shape_and_retry_after_503(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", "sekrit")
    client = OpenAIChatClient(server.url, "Qwen/Qwen2.5-VL-7B-Instruct", api_key_env="TEST_KEY", max_tokens=77,
                              backoff_s=0.01, image_max_side=64)
    (text,) = client.caption([CaptionRequest(frames(3), "Describe the video.")])
    assert text == "a rabbit sits on the grass"
    assert len(server.requests) == 2 and client.counters["retries"] == 1
    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sekrit"
    body = sent["body"]
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and body["max_tokens"] == 77
    (message,) = body["messages"]
    assert message["role"] == "user"
    images = [p for p in message["content"] if p["type"] == "image_url"]
    texts = [p for p in message["content"] if p["type"] == "text"]
    assert len(images) == 3 and texts == [{"type": "text", "text": "Describe the video."}]
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)


@pytest.mark.parametrize("server", [[500, 502, 503]], indirect=True)
def test_endpoint_that_stays_down_becomes_an_item_error(server: FakeServer) -> None:
    client = OpenAIChatClient(server.url, "m", max_retries=2, backoff_s=0.01)
    (result,) = client.caption([CaptionRequest(frames(1), "x")])
    assert isinstance(result, EndpointError)
    assert server.url in str(result) and "(last: HTTP 503)" in str(result)
    assert len(server.requests) == 3


@pytest.mark.parametrize("server", [[400]], indirect=True)
def test_client_errors_are_not_retried(server: FakeServer) -> None:
    client = OpenAIChatClient(server.url, "m", backoff_s=0.01)
    (result,) = client.caption([CaptionRequest(frames(1), "x")])
    assert isinstance(result, EndpointError) and "HTTP 400" in str(result)
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    client = OpenAIChatClient("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, timeout_s=2)
    (result,) = client.caption([CaptionRequest(frames(1), "x")])
    assert isinstance(result, EndpointError) and "gave up after 2 attempts" in str(result)
    assert client.counters["retries"] == 1
