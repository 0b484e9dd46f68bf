"""A scripted OpenAI-compatible chat server on 127.0.0.1: for tests, benchmarks and offline rehearsals.

Each POST takes the next script entry: an int is an HTTP status (200 answers with `content`), a `Fault`
is one way a real endpoint misbehaves (see `FAULTS`), any other string is the message content of a 200
answer. After the script, every request gets `default` (200 with `content` unless set, or with what
`reply(request body)` writes). `latency_s`
delays every answer; `max_in_flight` records the most requests the server held at once; each request's record
has its arrival `time` and, once answered, `answered` (monotonic clock). Answers carry
`usage.completion_tokens` (the content's words), and `GET /v1/models` lists `models`, as vLLM's server does.
`down_after=N` scripts a replica that dies: after its N-th request it resets every connection and stops listening.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# what a FakeServer serves unless told: the tests' names and the shipped pipelines' models
MODELS = ("served-vlm", "served-llm", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
FAULTS = ("slow", "hold", "reset", "malformed-json", "truncated-json", "empty", "not-utf8", "status")


@dataclass(frozen=True)
class Fault:
    """`slow`: answers after `slow_s` (trips client timeouts); `hold`: answers only once `release()` is called
    (at most `hold_s`): a test stops a run at a known point; `reset`: sends half the body, then a TCP reset;
    `malformed-json` / `truncated-json` / `not-utf8`: a 200 whose body is broken that way; `empty`: a chat
    completion with empty content; `status`: HTTP `status` with `headers` (e.g. 429 and Retry-After)."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(FAULTS)}")


Step = int | str | Fault


def caption_and_phrases(caption: str, phrases: list[str]) -> Callable[[dict], str]:
    """A `reply` for a pipeline's served caption and LLM phrase stages on one server: requests with a
    `response_format` (the phrase extractor's JSON schema) get `phrases` as spans of `caption`; others get
    `caption`."""
    lower = caption.lower()
    spans = [{"text": p, "start": lower.index(p.lower()), "end": lower.index(p.lower()) + len(p)} for p in phrases]

    def reply(body: dict) -> str:
        return json.dumps({"phrases": spans}) if "response_format" in body else caption

    return reply


def _completion(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}],
                       "usage": {"completion_tokens": len(content.split())}}).encode()


def _body(step: Step, content: str) -> tuple[int, bytes]:
    """Status and body bytes of one scripted answer (a reset sends part of it)."""
    if isinstance(step, int):
        return step, _completion(content) if step == 200 else b'{"error": "busy"}'
    if isinstance(step, str):
        return 200, _completion(step)
    good = _completion(content)
    match step.kind:
        case "malformed-json":
            return 200, good.replace(b'"}}]', b'",}}]')  # a trailing comma
        case "truncated-json":
            return 200, good[: len(good) // 2]
        case "empty":
            return 200, _completion("")
        case "not-utf8":
            return 200, good.replace(content[:1].encode(), b"\xc3\x28", 1)  # an invalid 2-byte sequence
        case "status":
            return step.status, b'{"error": "busy"}'
    return 200, good


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog of 5 drops SYNs when 16 clients connect at once (1 s stalls)
    daemon_threads = True


class FakeServer:
    def __init__(self, script: list[Step] | None = None, content: str = "a rabbit sits on the grass",
                 latency_s: float = 0.0, slow_s: float = 2.0, default: Step = 200,
                 reply: Callable[[dict], str] | None = None, hold_s: float = 300.0,
                 models: Sequence[str] = MODELS, down_after: int | None = None) -> None:
        self.script = list(script or [])
        self.content = content
        self.reply = reply  # content computed from the request body (for 200 answers past the script)
        self.default = default
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.hold_s = hold_s
        self.models = list(models)
        self.down_after = down_after
        self.down = threading.Event()
        self.released = threading.Event()
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_GET(self) -> None:
                if outer.down.is_set():
                    self._reset()
                    return
                if self.path.rstrip("/") != "/v1/models":
                    self.send_error(404)
                    return
                data = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in outer.models]})
                self._send(200, data.encode())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reset(self) -> None:
                """Close with a TCP reset (linger 0), as a crashed server's kernel would."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:  # one block: the N-th request, and only it, is the last one answered
                    gone = outer.down.is_set()
                    if not gone:
                        if outer.down_after is not None and len(outer.requests) + 1 >= outer.down_after:
                            outer._go_down()
                        record = {"path": self.path, "auth": self.headers.get("Authorization"), "body": body,
                                  "time": time.monotonic()}
                        outer.requests.append(record)
                        step = outer.script.pop(0) if outer.script else outer.default
                        if step == 200 and outer.reply is not None:
                            step = outer.reply(body)
                        outer.in_flight += 1
                        outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                if gone:  # requests it got while down are not recorded: they never reached a live server
                    self._reset()
                    return
                try:
                    slow = isinstance(step, Fault) and step.kind == "slow"
                    time.sleep(outer.latency_s + (outer.slow_s if slow else 0.0))
                    if isinstance(step, Fault) and step.kind == "hold":
                        outer.released.wait(outer.hold_s)
                    self._answer(step)
                    record["answered"] = time.monotonic()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)
                finally:
                    with lock:
                        outer.in_flight -= 1

            def _answer(self, step: Step) -> None:
                status, data = _body(step, outer.content)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (step.headers if isinstance(step, Fault) else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if isinstance(step, Fault) and step.kind == "reset":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self._reset()
                    return
                self.wfile.write(data)

            def finish(self) -> None:
                try:
                    super().finish()
                except OSError:
                    pass  # the connection was reset on purpose

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _go_down(self) -> None:
        """From now on: connections reset, the port closed (refused). The request that tripped it is answered."""
        self.down.set()
        threading.Thread(target=self._stop_listening, daemon=True).start()  # not from the handler thread

    def _stop_listening(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def release(self) -> None:
        """Answer the held requests (and every later `hold` at once)."""
        self.released.set()

    def close(self) -> None:
        self.release()
        if not self.down.is_set():
            self._stop_listening()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
