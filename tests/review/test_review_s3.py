"""Review with the run directory on an object store (the S3 test server): the demo pipeline with a `below` gate
runs through the CLI with `--output s3://…`, people decide in the review page in Chromium, and the next run
releases exactly the items they decided."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator import storage
from annotator.cli import app
from annotator.review.store import DecisionStore
from annotator.rundir import RunDir
from tests.conftest import BUCKET
from tests.helpers import DEMO, SMALL, export_rows
from tests.review.conftest import ARGS, Serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]
GATE = "stages.review_gate.params.policy={below: {score: 1.0}}"  # random weights score below 1: all wait


def run(inputs: str, out: str) -> str:
    args = ["run", str(DEMO), "--input", inputs, "--output", out, "--executor", "local", "--set", GATE]
    for setting in SMALL:
        args += ["--set", setting]
    result = CliRunner().invoke(app, args, terminal_width=300)
    assert result.exit_code == 3, result.output  # items wait for review
    return result.output


def test_review_on_an_object_store_run_directory(s3: dict[str, str], chromium: str, clips: dict[str, Path],
                                                 tiny_models, serve: Serve) -> None:
    from playwright.sync_api import sync_playwright

    inputs, out = f"s3://{BUCKET}/review-inputs", f"s3://{BUCKET}/runs/reviewed"
    for name, source in (("w1", "a"), ("w2", "b"), ("w3", "a"), ("w4", "b")):
        storage.write_bytes(f"{inputs}/{name}.mp4", clips[source].read_bytes())
    assert "4 items awaiting review" in run(inputs, out)

    _, url = serve(out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/")
        page.wait_for_selector("#queue li[data-id]")
        order = page.eval_on_selector_all("#queue li", "els => els.map(e => e.dataset.id)")
        assert sorted(order) == ["w1", "w2", "w3", "w4"]
        accepted, rejected = order[0], order[1]

        def open_item(vid: str) -> None:
            page.click(f"#queue li[data-id='{vid}']")
            page.wait_for_function(f"document.getElementById('title').textContent.startsWith('{vid} ')")
            page.wait_for_function("document.getElementById('overlay').width > 0")  # frames read from S3

        def saved(action: str) -> None:
            page.wait_for_function(f"document.getElementById('status').textContent.startsWith('saved {action}')")

        open_item(accepted)
        page.keyboard.press("a")
        saved("accept")
        open_item(rejected)
        page.fill("#reason", "too dark")
        page.click("#reject")
        saved("reject")
        browser.close()

    store = DecisionStore(out)
    assert [(d.item, d.action, d.reason) for d in store.history()] == [
        (accepted, "accept", ""), (rejected, "reject", "too dark")]
    assert len(storage.list_files(f"{out}/review/decisions", ".json")) == 2, "one immutable part per decision"

    assert "2 items awaiting review" in run(inputs, out)
    gate = RunDir(out).latest("review_gate")
    assert {vid: row["status"] for vid, row in gate.items()} == {
        accepted: "ok", rejected: "filtered", **{v: "pending" for v in order[2:]}}
    assert gate[rejected]["reason"] == "rejected by reviewer: too dark"
    assert [v["video_id"] for v in export_rows(out, "videos")] == [accepted]
    assert {o["provenance"] for o in export_rows(out, "objects")} == {"reviewed"}
