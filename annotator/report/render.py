"""One self-contained HTML report: every plot and thumbnail is an embedded PNG (no external files)."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend
from matplotlib.patches import Patch

from annotator import frames, masks, storage
from annotator.records import VideoItem
from annotator.report.review_section import agreement_figures, render_section
from annotator.report.stats import LISTED, RunStats, compute
from annotator.rundir import RunDir

SECTIONS = ("counts", "objects-per-video", "track-lengths", "mask-areas", "top-phrases", "drop-reasons",
            "review", "machine-vs-review", "thumbnails")
COLORS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]])


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _hist(counts: Counter, title: str, xlabel: str, bins: int = 20) -> str:
    """A histogram of value -> count."""
    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    values, weights = (list(counts), list(counts.values())) if counts else ([0], [1])
    ax.hist(values, weights=weights, bins=bins, color="#4c72b0")
    ax.set(title=title, xlabel=xlabel, ylabel="count")
    return _png(fig)


def _bars(counts: list[tuple[str, int]], title: str) -> str:
    fig = Figure(figsize=(5, max(2.0, 0.3 * len(counts) + 1)))
    ax = fig.subplots()
    labels = [c[0] for c in counts] or ["(none)"]
    ax.barh(labels[::-1], [c[1] for c in counts][::-1] or [0], color="#55a868")
    ax.set(title=title, xlabel="count")
    return _png(fig)


def _thumbnail(item: VideoItem, run_root: str | None) -> str | None:
    """The frame where the item's objects cover the most pixels, masks tinted, with a legend naming each
    colour's phrase below it."""
    if item.info is None or not item.objects:
        return None
    h, w = item.info.height, item.info.width
    area_by_frame: dict[int, int] = {}
    for obj in item.objects:
        for f, counts in zip(obj.masks.frames, obj.masks.rles, strict=True):
            area_by_frame[f] = area_by_frame.get(f, 0) + masks.area(counts, h, w)
    position = max(area_by_frame, key=lambda f: area_by_frame[f])
    frame = frames.read(item, [position], run_root)[0].astype(float)
    legend = []
    for i, obj in enumerate(item.objects):
        color = COLORS[i % len(COLORS)]
        legend.append(Patch(color=color / 255, label=f"{obj.object_id}: {item.phrases[obj.phrase].text}"))
        if position in obj.masks.frames:
            m = masks.decode(obj.masks.rles[obj.masks.frames.index(position)], h, w)
            frame[m] = 0.5 * frame[m] + 0.5 * color
    fig = Figure(figsize=(5, 5 * h / w + 0.3 * len(legend) + 0.4))
    ax = fig.subplots()
    ax.imshow(frame.astype(np.uint8))
    ax.set_axis_off()
    ax.set_title(f"{item.video_id}, frame {item.info.frame_indices[position]}", fontsize=11)
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(0.0, -0.01), fontsize=11, frameon=False)
    return _png(fig)


def _review_outcomes(run: RunDir, manifest: dict) -> list[tuple[str, int]]:
    """People's decisions by action, and the items the gate's policy let through (from its own index rows, summed
    into the manifest's counters)."""
    from annotator.review.store import DecisionStore

    outcomes = Counter(d.action for d in DecisionStore(run.root).history())
    released = (manifest.get("counters") or {}).get("review_gate.released_by_policy", 0)
    if released:
        outcomes["policy"] += released
    return sorted(outcomes.items())


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{html.escape(title)}</h2>{body}</section>'


def _img(src: str, alt: str) -> str:
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _listing(rows: list[str], total: int, what: str) -> str:
    """An HTML list of the rows kept (the first LISTED), saying how many more there are of `total`."""
    if not total:
        return f"<p>No {what}.</p>"
    more = f"<li>… and {total - len(rows)} more</li>" if total > len(rows) else ""
    items = "".join(f"<li>{html.escape(r)}</li>" for r in rows)
    return f"<p>{total} {what}:</p><ul>{items}{more}</ul>"


def _table(counts: list[tuple[str, int]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in counts) + "</table>"


@dataclass
class Settled:
    """What the stage indexes say about the current input set: failed and filtered files, and what is left."""

    failed: list[str] = field(default_factory=list)  # the first LISTED: "video_id (path) stage: ErrorType: message"
    failed_count: int = 0
    error_reasons: Counter[str] = field(default_factory=Counter)  # "stage: ErrorType" -> videos
    filtered: list[str] = field(default_factory=list)  # the first LISTED: "video_id (path) stage: reason"
    filtered_count: int = 0
    total: int = 0
    unfinished: int = 0
    finished: bool = True


def settled_states(run: RunDir, manifest: dict) -> Settled:
    """Read from the indexes, not from errors.parquet, so a run that was stopped midway is reported as it is. A
    stage's newest rows stay Arrow: error kinds are counted there, and only the first LISTED error and filtered
    rows become Python rows."""
    current = run.current_table()
    out = Settled(total=current.num_rows, finished=bool(manifest.get("finished")))
    done = []
    columns = ["video_id", "path", "status", "error_type", "reason"]
    for entry in manifest["stages"]:
        stage = entry["stage"]
        rows = run.current_rows(stage, manifest["fingerprints"][stage], columns, current if current.num_rows else None)
        last = stage == manifest["stages"][-1]["stage"]
        rows = rows.filter(pc.is_in(rows["status"], pa.array(["error", "filtered", *(["ok"] if last else [])])))
        done.append(rows["video_id"])
        failed = rows.filter(pc.equal(rows["status"], "error"))
        for kind in failed.group_by("error_type").aggregate([("video_id", "count")]).to_pylist():
            out.error_reasons[f"{stage}: {kind['error_type']}"] += kind["video_id_count"]
        out.failed_count += failed.num_rows
        for row in failed.sort_by("video_id").slice(0, max(LISTED - len(out.failed), 0)).to_pylist():
            out.failed.append(f"{row['video_id']} ({row['path']}) {stage}: {row['error_type']}: {row['reason']}")
        filtered = rows.filter(pc.equal(rows["status"], "filtered"))
        out.filtered_count += filtered.num_rows
        for row in filtered.sort_by("video_id").slice(0, max(LISTED - len(out.filtered), 0)).to_pylist():
            out.filtered.append(f"{row['video_id']} ({row['path']}) {stage}: {row['reason']}")
    ids = current["video_id"]
    if done:
        ids = ids.filter(pc.invert(pc.is_in(ids, pa.chunked_array(done, pa.string()).combine_chunks())))
    out.unfinished = len(pc.unique(ids))
    return out


def _unfinished(settled: Settled) -> str:
    if settled.finished and not settled.unfinished:
        return ""
    left = f"{settled.unfinished} of {settled.total} videos have not finished" if settled.unfinished \
        else "the run did not reach its end"
    return (f'<p class="warn"><strong>Unfinished run:</strong> {left}; this report shows what is done so far. '
            "Run the same command again to resume.</p>")


def render(stats: RunStats, items: list[VideoItem], review: list[tuple[str, int]], title: str,
           thumbnails: int = 4, run_root: str | None = None, settled: Settled | None = None,
           agreement: dict | str = "No review figures.") -> str:
    settled = settled or Settled()
    counts = [("videos", stats.videos), ("QA triplets", stats.qa), ("objects", stats.objects),
              ("masks", stats.masks), ("errors", stats.errors), ("filtered", settled.filtered_count)]
    thumbs = [t for it in items[:thumbnails] if (t := _thumbnail(it, run_root))]
    review_body = (_img(_bars(review, "review decisions"), "review decisions") + _table(review) if review
                   else "<p>No review decisions recorded for this run.</p>")
    dropped = [f"{vid} object {oid} ({phrase}): {reason}" for vid, oid, phrase, reason in stats.dropped_objects]
    sections = [
        _section("counts", "Counts", _unfinished(settled) + _table(counts)
                 + _table(stats.error_reasons.most_common())
                 + _listing(settled.failed, settled.failed_count, "failed files")),
        _section("objects-per-video", "Objects per video",
                 _img(_hist(stats.objects_per_video, "objects per video", "objects"), "objects per video")),
        _section("track-lengths", "Track lengths",
                 _img(_hist(stats.track_lengths, "frames per object", "frames"), "track lengths")),
        _section("mask-areas", "Mask areas",
                 _img(_hist(stats.mask_areas, "mask area", "fraction of the frame"), "mask areas")),
        _section("top-phrases", "Top phrases",
                 _img(_bars(stats.phrases.most_common(15), "top phrases"), "top phrases")),
        _section("drop-reasons", "Filter and drop reasons",
                 _img(_bars(stats.drop_reasons.most_common(), "dropped phrases and objects by reason"),
                      "drop reasons") + _table(stats.drop_reasons.most_common())
                 + _listing(dropped, stats.dropped_count, "objects dropped")
                 + _listing(settled.filtered, settled.filtered_count, "items filtered")),
        _section("review", "Review outcomes", review_body),
        _section("machine-vs-review", "Machine vs review", render_section(agreement)),
        _section("thumbnails", "Examples", "".join(_img(t, "thumbnail") for t in thumbs) or "<p>No objects.</p>"),
    ]
    style = ("body{font-family:sans-serif;margin:2em}img{margin:4px;vertical-align:top}"
             "th{text-align:left;padding-right:1em}.grid td{padding-right:1em}"
             ".warn{background:#fff3cd;padding:.6em;border:1px solid #e0c060}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> str:
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    settled = settled_states(run, manifest)
    examples: list[VideoItem] = []  # the thumbnails': the first few, kept as the one pass goes by

    def first_kept(items: Iterator[VideoItem]) -> Iterator[VideoItem]:
        for item in items:
            if len(examples) < 4:
                examples.append(item)
            yield item

    stats = compute(first_kept(run.iter_final_items()), settled.failed_count, settled.error_reasons)
    page = render(stats, examples, _review_outcomes(run, manifest), f"annotator report: {manifest['pipeline']['name']}",
                  run_root=run.root, settled=settled, agreement=agreement_figures(run, manifest))
    out = str(out) if out else run.path("report.html")
    storage.write_text(out, page)
    return out
