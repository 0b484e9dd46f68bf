"""A scripted OpenAI-compatible chat server on 127.0.0.1: for tests, benchmarks and offline rehearsals.

Each POST takes the next script entry: an int is an HTTP status (200 answers with `content`), `"slow"`
sleeps `slow_s` before answering 200 (to trip client timeouts), any other string is the message content
of a 200 answer. After the script, every request gets 200 with `content`. `latency_s` delays every
answer; `max_in_flight` records the most requests the server held at once.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog of 5 drops SYNs when 16 clients connect at once (1 s stalls)
    daemon_threads = True


class FakeServer:
    def __init__(self, script: list[int | str] | None = None, content: str = "a rabbit sits on the grass",
                 latency_s: float = 0.0, slow_s: float = 2.0) -> None:
        self.script = list(script or [])
        self.content = content
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                           "body": body})
                    step = outer.script.pop(0) if outer.script else 200
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.latency_s + (outer.slow_s if step == "slow" else 0.0))
                    status = step if isinstance(step, int) else 200
                    content = step if isinstance(step, str) and step != "slow" else outer.content
                    payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                    data = json.dumps(payload if status == 200 else {"error": "busy"}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)
                finally:
                    with lock:
                        outer.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
