"""The review page in headless Chromium (Playwright) on a real run with the tiny models: one item accepted, one
rejected, one phrase renamed, one mask fixed with two clicks; the store holds exactly that, the next run's
dataset reflects exactly those decisions (the fixed mask bit-identical to the saved one), and the report's
"Machine vs review" section, shown in the browser, counts exactly those decisions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from annotator import masks
from annotator.cli import app
from annotator.pipeline import RunSummary
from annotator.review.items import ReviewRun
from annotator.review.store import DecisionStore
from annotator.rundir import RunDir
from tests.helpers import demo_pipeline, export_rows
from tests.review.conftest import ARGS, Serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]
def run_all_pending(inputs: list[Path], run_dir: Path) -> RunSummary:
    return demo_pipeline("stages.review_gate.params.policy=all").run(inputs, run_dir, executor="local",
                                                                      show_progress=False)


def test_review_page_decisions_reach_the_dataset(chromium: str, clips: dict[str, Path], tiny_models,
                                                 tmp_path: Path, serve: Serve) -> None:
    from playwright.sync_api import sync_playwright

    inputs = []
    for name, source in (("w1", "a"), ("w2", "b"), ("w3", "a"), ("w4", "b")):
        inputs.append(tmp_path / f"{name}.mp4")
        shutil.copy(clips[source], inputs[-1])
    run_dir = tmp_path / "run"
    assert run_all_pending(inputs, run_dir).pending == 4
    _, url = serve(run_dir)
    artifacts = Path(os.environ.get("ANNOTATOR_TEST_ARTIFACTS", "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/")
        page.wait_for_selector("#queue li[data-id]")
        order = page.eval_on_selector_all("#queue li", "els => els.map(e => e.dataset.id)")
        assert sorted(order) == ["w1", "w2", "w3", "w4"]
        first, second, third, fourth = order

        def open_item(vid: str) -> None:
            page.click(f"#queue li[data-id='{vid}']")
            page.wait_for_function(f"document.getElementById('title').textContent.startsWith('{vid} ')")
            page.wait_for_function("document.getElementById('overlay').width > 0")

        def saved(action: str) -> None:
            page.wait_for_function(f"document.getElementById('status').textContent.startsWith('saved {action}')")

        open_item(first)
        colored = page.evaluate("""() => { const c = document.getElementById('overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert colored > 0, "mask overlay drawn"
        page.screenshot(path=str(artifacts / "review-page.png"), full_page=True)
        page.keyboard.press("a")
        saved("accept")

        open_item(second)
        page.fill("#reason", "camera shake")
        page.click("#reject")
        saved("reject")

        open_item(third)
        renamed = page.eval_on_selector(".obj", "e => Number(e.dataset.object)")
        page.fill(".obj .newname", "a small rabbit")
        page.click(".obj .rename")
        saved("rename")
        page.click("#accept")
        saved("accept")

        open_item(fourth)
        fixed = page.eval_on_selector(".obj", "e => Number(e.dataset.object)")
        machine = ReviewRun(str(run_dir)).base(fourth)
        box = page.locator("#overlay").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
        page.keyboard.down("Shift")
        page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.1)
        page.keyboard.up("Shift")
        page.click("#track")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('new masks')",
                               timeout=120_000)
        page.click("#savefix")
        saved("fix_mask")
        page.click("#accept")
        saved("accept")
        page.screenshot(path=str(artifacts / "review-page-after.png"), full_page=True)

        again = run_all_pending(inputs, run_dir)
        report = CliRunner().invoke(app, ["report", str(run_dir)], terminal_width=300)
        assert report.exit_code == 0, report.output
        page.goto((run_dir / "report.html").as_uri())
        section = page.locator("#machine-vs-review")
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(artifacts / "report-machine-vs-review.png"))
        shown = section.inner_text()
        browser.close()

    store = DecisionStore(str(run_dir))
    rows = [(d.item, d.action, d.object) for d in store.history()]
    assert rows == [(first, "accept", None), (second, "reject", None), (third, "rename", renamed),
                    (third, "accept", None), (fourth, "fix_mask", fixed), (fourth, "accept", None)]
    history = store.history()
    assert history[1].reason == "camera shake" and history[2].payload == {"text": "a small rabbit"}
    fix = history[4].payload
    assert len(fix["frames"]) == len(fix["rles"]) >= 1

    assert (again.completed, again.filtered, again.pending) == (3, 1, 0)
    gate = RunDir(str(run_dir)).latest("review_gate")
    assert gate[second]["reason"] == "rejected by reviewer: camera shake"
    videos = {v["video_id"]: v for v in export_rows(run_dir, "videos")}
    assert sorted(videos) == sorted([first, third, fourth])
    objects = {(o["video_id"], o["object_id"]): o for o in export_rows(run_dir, "objects")}
    assert {o["provenance"] for (vid, _), o in objects.items() if vid == first} == {"reviewed"}
    assert (objects[(third, renamed)]["phrase"], objects[(third, renamed)]["provenance"]) == ("a small rabbit",
                                                                                            "edited")
    (qa,) = [q for q in export_rows(run_dir, "qa") if q["video_id"] == third]
    assert "<p> a small rabbit </p> [SEG]" in qa["answer"]
    got = objects[(fourth, fixed)]
    assert got["provenance"] == "fixed" and got["mask_rles"] == fix["rles"]
    assert got["frame_indices"] == [videos[fourth]["frame_indices"][f] for f in fix["frames"]]

    figures = json.loads(CliRunner().invoke(app, ["evaluate", "--review", str(run_dir)]).output.splitlines()[-1])
    assert (figures["reviewed"], figures["accepted_as_is"], figures["edited"], figures["rejected"]) == (4, 1, 2, 1)
    assert figures["reject_reasons"] == {"camera shake": 1}
    total = sum(len(ReviewRun(str(run_dir)).base(v).objects) for v in (first, third, fourth))
    assert figures["objects"] == {"total": total, "kept": total - 2, "renamed": 1, "dropped": 0, "merged": 0,
                                  "fixed": 1}
    assert machine.info is not None
    (before,) = [o.masks for o in machine.objects if o.object_id == fixed]
    h, w = machine.info.height, machine.info.width
    frames = sorted(set(before.frames) | set(fix["frames"]))
    a = np.stack([masks.decode(dict(zip(before.frames, before.rles, strict=True))[f], h, w) if f in before.frames
                  else np.zeros((h, w), bool) for f in frames])
    b = np.stack([masks.decode(dict(zip(fix["frames"], fix["rles"], strict=True))[f], h, w) if f in fix["frames"]
                  else np.zeros((h, w), bool) for f in frames])
    (got_fix,) = figures["fixed_masks"]
    assert got_fix["track_iou"] == pytest.approx((a & b).sum() / (a | b).sum(), abs=1e-6)
    for line in ("items reviewed\t4", "accepted as is\t1 (25%)", "edited\t2 (50%)", "rejected\t1 (25%)",
                 "camera shake\t1", "renamed\t1", "fixed\t1", f"{fourth}\t{fixed}\t{got_fix['track_iou']:.4f}"):
        assert line in shown, (line, shown)
