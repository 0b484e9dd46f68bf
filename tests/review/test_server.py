"""The review server as users and attackers meet it: a real `annotator review` process on 127.0.0.1."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from annotator import storage
from annotator.review.store import DecisionStore
from tests.conftest import BUCKET
from tests.review.conftest import Serve


def test_beyond_localhost_every_request_needs_the_token(pending_run: Path, serve: Serve) -> None:
    proc, url = serve(pending_run, host="0.0.0.0")
    assert httpx.get(url + "/api/queue").status_code == 401
    assert httpx.get(url + "/", params={"token": "wrong"}).status_code == 401
    assert httpx.get(url + "/api/queue", headers={"Authorization": "Bearer nope"}).status_code == 401
    line = proc.stdout.readline() if proc.stdout else ""
    assert "?token=" in line, line
    token = line.split("?token=")[1].split()[0]
    page = httpx.get(url + "/", params={"token": token})
    assert page.status_code == 200 and "annotator review" in page.text
    with httpx.Client(base_url=url, cookies=page.cookies) as browser:  # the page's later requests: the cookie
        assert browser.get("/api/queue").json()["total"] == 5
    assert httpx.get(url + "/api/queue", headers={"Authorization": f"Bearer {token}"}).json()["total"] == 5


def test_ids_and_positions_never_reach_outside_the_run(pending_run: Path, serve: Serve) -> None:
    _, url = serve(pending_run)
    secret = pending_run.parent / "secret.txt"
    secret.write_text("TOP SECRET")
    probes = ["../secret.txt", "..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "%2Fetc%2Fpasswd", "/etc/passwd",
              "v1%00", "..", "v1/../../secret.txt", "nope", "v1.mp4", "C:%5Cwindows"]
    for probe in probes:
        for tail in ("", "/frame/0.jpg", "/overlay/0.png"):
            response = httpx.get(f"{url}/api/items/{probe}{tail}")
            assert response.status_code in (400, 404), (probe, tail, response.status_code)
            assert "TOP SECRET" not in response.text and "root:" not in response.text
    assert httpx.get(f"{url}/api/items/v1/frame/3.jpg").status_code == 404  # 3 frames: positions 0..2
    assert httpx.get(f"{url}/api/items/v1/frame/-1.jpg").status_code == 404
    good = httpx.get(f"{url}/api/items/v1/frame/2.jpg")
    assert good.status_code == 200 and good.content[:3] == b"\xff\xd8\xff"
    bad = httpx.post(f"{url}/api/items/v1/decisions", json={"action": "drop", "object": 99, "reason": "x"})
    assert bad.status_code == 400 and "no object 99" in bad.text
    assert httpx.post(f"{url}/api/items/v1/decisions", json={"action": "reject"}).status_code == 400


@pytest.mark.slow
def test_twenty_clients_post_ten_thousand_decisions(tmp_path: Path, pending_run: Path, serve: Serve) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pending_run, run)
    _, url = serve(run)
    failures: list[int] = []

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(500):
                body = {"action": "rename", "object": 1 + i % 3, "reviewer": f"r{n}",
                        "payload": {"text": f"thing {n}-{i}"}}
                response = http.post(f"/api/items/v{1 + (n + i) % 5}/decisions", json=body)
                if response.status_code != 200:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    store = DecisionStore(str(run))
    assert store.count() == 10_000
    assert {d.reviewer for d in store.history()} == {f"r{n}" for n in range(20)}


@pytest.fixture(params=["local", "s3"])
def run_copy(request: pytest.FixtureRequest, tmp_path: Path, pending_run: Path) -> str:
    """A copy of the pending run on local disk, or on the S3 test server."""
    import shutil

    if request.param == "local":
        shutil.copytree(pending_run, tmp_path / "run")
        return str(tmp_path / "run")
    request.getfixturevalue("s3")
    out = f"s3://{BUCKET}/runs/{tmp_path.name}"
    fs, path = storage.filesystem(out)
    fs.put(str(pending_run), path, recursive=True)
    return out


def test_kill_9_loses_no_acknowledged_decision(run_copy: str, serve: Serve) -> None:
    import time

    proc, url = serve(run_copy)
    acknowledged: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for i in range(10_000):
                try:
                    response = http.post(f"/api/items/v{1 + n % 5}/decisions",
                                         json={"action": "accept", "reviewer": f"r{n}-{i}"})
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        acknowledged.append(response.json()["id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 300:
        assert time.monotonic() < deadline, f"only {len(acknowledged)} of 300 decisions acknowledged in 120 s"
        assert any(t.is_alive() for t in threads), f"every client stopped after {len(acknowledged)} decisions"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    store = DecisionStore(run_copy)  # every part the killed server left reads whole
    ids = {d.id for d in store.history()}
    assert len(acknowledged) >= 300 and set(acknowledged) <= ids
    assert len(acknowledged) <= store.count() == len(ids), "one id per decision"
