"""Endpoint faults against a fault-injecting server on 127.0.0.1, for the served captioner and the phrase LLM.

Once, each fault is retried (or, for an empty answer, handled as the reply it is) and the item succeeds;
every time, it ends as an item error that names it, and the run still finishes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator.config import ConfigError, PipelineConfig
from annotator.models.vlm_openai import OpenAIChatClient
from annotator.pipeline import Pipeline
from annotator.rundir import RunDir
from annotator.testing.fake_server import FakeServer, Fault, Step

CAPTION = "a rabbit near a tree"
PHRASES = json.dumps({"phrases": [{"text": "a rabbit", "start": 0, "end": 8}, {"text": "a tree"}]})
REFUSED = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
# the client waits TIMEOUT_S; the scripted `slow` fault answers after SLOW_S, far beyond it, while a healthy
# reply on a busy machine stays far below it: the timeout is the script's, never a race
TIMEOUT_S, SLOW_S = 2.0, 6.0

# fault -> (script step, the words the item error must contain when the fault never clears)
FAULTS: dict[str, tuple[Step | None, str]] = {
    "timeout": (Fault("slow"), "timeout after 2 s"),
    "http-500": (500, "HTTP 500"),
    "http-503": (503, "HTTP 503"),
    "http-429-retry-after": (Fault("status", 429, {"Retry-After": "1"}), "HTTP 429"),
    "connection-refused": (None, "connection error (ConnectError"),
    "reset-mid-body": (Fault("reset"), "connection error ("),
    "malformed-json": (Fault("malformed-json"), "reply is malformed json"),
    "truncated-json": (Fault("truncated-json"), "reply is truncated json"),
    "empty-content": (Fault("empty"), "empty"),
    "not-utf8": (Fault("not-utf8"), "reply is not UTF-8"),
}


def ask(url: str, **kw: object) -> OpenAIChatClient:
    return OpenAIChatClient(url, "m", backoff_s=0.01, timeout_s=TIMEOUT_S, max_retries=2, **kw)


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("connection-refused", "empty-content")])
def test_a_fault_once_is_retried_and_the_request_succeeds(fault: str) -> None:
    step, _ = FAULTS[fault]
    with FakeServer([step], slow_s=SLOW_S) as server:
        (reply,) = ask(server.url).run([lambda: [{"role": "user", "content": "q"}]])
    assert (reply.text, reply.error) == ("a rabbit sits on the grass", None)
    assert reply.counters["requests"] == 2 and reply.counters["retries"] == 1
    assert len(server.requests) == 2


def test_retry_after_is_honoured() -> None:
    with FakeServer([Fault("status", 429, {"Retry-After": "1.5"}), Fault("status", 503, {"Retry-After": "0"})]) as s:
        (reply,) = ask(s.url).run([lambda: [{"role": "user", "content": "q"}]])
    assert reply.text == "a rabbit sits on the grass"
    first, second, third = (r["time"] for r in s.requests)
    assert second - first >= 1.5, "the server asked for 1.5 s, far above the 0.01 s backoff"
    assert third - second < 1.0
    with FakeServer([Fault("status", 429, {"Retry-After": "3600"})]) as s:
        (reply,) = ask(s.url, max_retry_after_s=60).run([lambda: [{"role": "user", "content": "q"}]])
    assert "retry after 3600 s, more than max_retry_after_s=60" in str(reply.error) and len(s.requests) == 1


def pipeline(caption_url: str, phrase_url: str) -> Pipeline:
    endpoint = {"timeout_s": TIMEOUT_S, "max_retries": 1, "backoff_s": 0.01, "max_concurrency": 2}
    return Pipeline(PipelineConfig.model_validate({"name": "faults", "stages": [
        {"stage": "ingest", "params": {"target_fps": 4, "max_frames": 3}},
        {"stage": "caption", "params": {"backend": "openai", "endpoint": caption_url, "model": "served-vlm",
                                        "num_frames": 2, **endpoint}},
        {"stage": "phrases", "params": {"backend": "llm", "endpoint": phrase_url, "model": "served-llm", **endpoint}},
    ]}))


@pytest.mark.parametrize("target", ["caption", "phrases"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_that_never_clears_is_an_item_error_naming_it_and_the_run_finishes(
        fault: str, target: str, clips: dict[str, Path], tmp_path: Path) -> None:
    step, words = FAULTS[fault]
    with (FakeServer(content=CAPTION) as captioner, FakeServer(content=PHRASES) as phraser,
          FakeServer(default=step if step is not None else 200, slow_s=SLOW_S) as broken):
        url = REFUSED if step is None else broken.url
        run = pipeline(url if target == "caption" else captioner.url, url if target == "phrases" else phraser.url)
        if step is None:  # refused from the start: the preflight stops the run before any video
            with pytest.raises(ConfigError, match=f"stage {target}: no endpoint serves model served-"):
                run.run([clips["a"], clips["b"]], tmp_path, executor="local", show_progress=False)
            assert not (tmp_path / "stages").exists() and not (tmp_path / "errors.parquet").exists()
            return
        summary = run.run([clips["a"], clips["b"]], tmp_path, executor="local", show_progress=False)
    assert (summary.videos, summary.completed, summary.errors) == (2, 0, 2)
    errors = RunDir(str(tmp_path)).read_errors().to_pylist()
    assert {r["video_id"] for r in errors} == {"clip_a", "clip_b"}
    for row in errors:
        assert row["stage"] == target and words in row["message"], row["message"]
    assert json.loads((tmp_path / "manifest.json").read_text())["finished"]
