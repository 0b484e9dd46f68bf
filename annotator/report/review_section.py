"""The report's "Machine vs review" section: the review agreement figures as tables a person can read."""

from __future__ import annotations

import html
from typing import Any

from annotator.rundir import RunDir

SCORE_NAMES = {"detect": "detector score (best for the phrase)", "track": "tracker mean mask score",
               "review_priority": "review priority (the gate's order)"}


def agreement_figures(run: RunDir, manifest: dict[str, Any]) -> dict[str, Any] | str:
    """The figures, or why there are none (no review gate, a store this run directory cannot hold)."""
    if "review_gate" not in [s["stage"] for s in manifest["stages"]]:
        return "The pipeline has no review gate."
    from annotator.review.agreement import compute

    try:
        return compute(run.root).to_dict()
    except (ValueError, OSError) as exc:
        return f"Not available: {exc}"


def _rows(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def _grid(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return ("<table class=\"grid\"><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}"
            "</table>")


def _share(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.0f}%)" if whole else str(part)


def render_section(figures: dict[str, Any] | str) -> str:
    if isinstance(figures, str):
        return f"<p>{html.escape(figures)}</p>"
    n = figures["reviewed"]
    if not n:
        return "<p>No item has been accepted or rejected by a person yet.</p>"
    body = [f"<p>{n} items were decided by people. Read the shares below as how far to trust the items nobody "
            "reviewed: an item the machine got right is accepted as is.</p>",
            _rows([("items reviewed", n), ("accepted as is", _share(figures["accepted_as_is"], n)),
                   ("edited", _share(figures["edited"], n)), ("rejected", _share(figures["rejected"], n))])]
    if figures["reject_reasons"]:
        body.append("<h3>Reject reasons</h3>" + _rows(sorted(figures["reject_reasons"].items())))
    objects = figures["objects"]
    body.append("<h3>Objects of accepted items</h3>" + _rows(
        [(k, _share(objects[k], objects["total"]) if k != "total" else objects[k])
         for k in ("total", "kept", "renamed", "dropped", "merged", "fixed")]))
    fixed = figures["fixed_masks"]
    if fixed:
        body.append("<h3>Fixed masks: IoU of the machine's track with the person's fix</h3>" + _grid(
            ["video", "object", "track IoU", "per frame (position: IoU)"],
            [[f["video_id"], f["object_id"], f"{f['track_iou']:.4f}",
              ", ".join(f"{p}: {v:.3f}" for p, v in f["frame_ious"].items())] for f in fixed]))
    if figures["thresholds"]:
        body.append("<h3>Which threshold would have sent every correction to review</h3>" + _grid(
            ["score", "reviewed", "corrected", "highest corrected score", "share a below-threshold just above it "
                                                                          "would send"],
            [[SCORE_NAMES.get(k, k), t["reviewed"], t["corrected"], t["highest_corrected_score"],
              f"{100 * t['would_send']:.0f}%"] for k, t in figures["thresholds"].items()]))
    body.append("<h3>Accepted as is, by review priority (lower: more doubtful)</h3>" + _grid(
        ["priority", "reviewed", "accepted as is", "accept rate"],
        [[b["priority"], b["reviewed"], b["accepted_as_is"],
          "" if b["accept_rate"] is None else f"{100 * b['accept_rate']:.0f}%"] for b in figures["buckets"]]))
    if figures["unapplied"]:
        body.append("<p>Decisions that no longer apply: " + html.escape("; ".join(figures["unapplied"])) + "</p>")
    return "".join(body)
