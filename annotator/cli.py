"""The `annotator` command: run, status, export, report, review, demo, models tiny; train, predict, evaluate.

Mistakes in configs or inputs print one line (file, key, fix) and exit with code 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from annotator import paths
from annotator.config import ConfigError, load_config
from annotator.terminal import PLAIN, VideoProgress, captured_stderr, console, err, fail

if TYPE_CHECKING:
    from annotator.rundir import RunDir

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Videos in, grounded video conversations out.")
models_app = typer.Typer(no_args_is_help=True, help="Model checkpoints.")
app.add_typer(models_app, name="models")
_PLAIN = PLAIN
_fail = fail


def _quiet_libraries(verbose: bool = False, in_process_models: bool = True) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("RAY_LOG_TO_STDERR", "0")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning" if verbose else "error")  # workers inherit it
    if in_process_models or "transformers" in sys.modules:  # a Ray driver loads no model: spare the import
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.ERROR)


def _print_plan(pipeline_rows: list[dict], title: str) -> None:
    console.print(f"[bold]{escape(title)}[/bold]", soft_wrap=True)
    for row in pipeline_rows:
        models = " ".join(f"{k}={v}" for k, v in row["models"].items() if v) or "no model"
        console.print(
            f"  {row['stage']:<9} {models}  cpus={row['cpus']} gpus={row['gpus']} "
            f"concurrency={row['concurrency']} batch={row['batch_size']}",
            soft_wrap=True, highlight=False, markup=False,  # model ids and paths print as they are
        )


def _run(pipeline_file: Path, inputs: list[str], output: str, executor: str | None, address: str | None,
         dry_run: bool, overrides: list[str], verbose: bool = False, drop_frames: bool = False,
         recursive: bool = True, force_new_inputs: bool = False) -> None:
    from annotator import storage
    from annotator.pipeline import Pipeline
    from annotator.rundir import RunDir

    try:
        config = load_config(pipeline_file, overrides)
        pipeline = Pipeline(config, str(pipeline_file))
    except ConfigError as exc:
        _fail(str(exc))
        return
    if executor not in (None, "local", "ray"):
        _fail(f"--executor {executor}: use local or ray")
    if storage.exists(output) and not storage.isdir(output):
        _fail(f"--output {output} is a file: name a folder (a new one, or an earlier run directory to resume)")
    try:
        missing = [p for p in inputs if not storage.exists(p)]
        if missing:
            _fail(f"input {missing[0]} does not exist: pass video files, folders of videos or folders of frames")
        if not inputs and not hasattr(pipeline.stages[0].stage, "inputs"):
            _fail("no --input given (only a pipeline whose first stage is a `source` lists its own inputs)")
        found, skipped = pipeline.find_inputs(inputs, recursive, pipeline.id_rule(RunDir(output)))
        if not found.num_rows:
            why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3]) or "empty"
            _fail(f"no videos or frame folders found in {', '.join(inputs) or 'the source'} ({why})")
    except (OSError, ValueError) as exc:  # an unreachable store, bad credentials
        _fail(f"cannot read inputs: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    kind = executor or config.executor.kind
    try:
        pipeline.check_executor(kind)
        if dry_run:
            pipeline.preflight()
    except ConfigError as exc:
        _fail(str(exc))
    _print_plan(pipeline.describe(), f"{config.name}: {kind} executor -> {output}")
    console.print(f"inputs: {found.num_rows} video{'' if found.num_rows == 1 else 's'}"
                  + (f", {len(skipped)} skipped (listed by `annotator status`)" if skipped else ""), **_PLAIN)
    if dry_run:
        console.print("[green]config valid[/green] (dry run: no model loaded, nothing written)")
        return
    _quiet_libraries(verbose, in_process_models=kind == "local")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a polite kill ends like Ctrl-C: workers stopped, resumable
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with captured_stderr(err, kind == "ray" and not verbose), \
                VideoProgress(err, enabled=kind == "ray") as progress:
            summary = pipeline.run(inputs, output, executor=kind, address=address, verbose=verbose,
                                   recursive=recursive, keep_frames=not drop_frames, on_status=progress.update,
                                   on_start=progress.start, show_progress=kind == "local",
                                   force_new_inputs=force_new_inputs, discovered=(found, skipped))
    except ConfigError as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt:
        err.print(f"interrupted: {_finished(output)} videos finished; run the same command to resume",
                  highlight=False, soft_wrap=True)
        _exit_now(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(
        f"[bold]{summary.completed}/{summary.videos} videos done[/bold], {summary.errors} errors, "
        + (f"{summary.filtered} filtered, " if summary.filtered else "")
        + f"{summary.qa} QA triplets, {summary.objects} objects in {summary.seconds:.1f}s"
    )
    if summary.reused:
        console.print("reused from earlier runs: " + ", ".join(f"{k}: {v}" for k, v in summary.reused.items()))
    _print_sample(summary.run_dir)
    console.print(f"run directory: {summary.run_dir}", **_PLAIN)
    console.print(f"dataset (Parquet parts): {storage.join(summary.run_dir, 'export', 'parquet')}", **_PLAIN)
    if summary.errors:
        console.print(f"errors: {storage.join(summary.run_dir, 'errors.parquet')} (see `annotator status`)",
                      **_PLAIN)
    if summary.pending:
        console.print(f"{summary.pending} items awaiting review: annotator review {summary.run_dir}", **_PLAIN)
        raise typer.Exit(3)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _exit_now(code: int) -> None:
    """Leave at once after an interrupt: stop Ray's processes, flush, skip interpreter teardown. A model
    interrupted mid-call can leave native thread pools that abort the teardown (`terminate called without an
    active exception`), which would turn a clean 130 into a crash."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _finished(output: str) -> int:
    """Videos the run directory holds finished (from its indexes), or 0 when it has none yet."""
    from annotator.rundir import RunDir

    try:
        return RunDir(output).finished_table(columns=("video_id",)).num_rows
    except (OSError, KeyError, ValueError):
        return 0


def _print_sample(run_dir: str) -> None:
    """Show one triplet, so the user sees what the dataset looks like."""
    from annotator.rundir import RunDir

    rows = []
    for _, data in RunDir(run_dir).current_parts("qa"):  # the first current part is enough: never the whole table
        rows = data.slice(0, 1).to_pylist()
        if rows:
            break
    for row in rows:
        console.print(f"example [{row['video_id']}] Q: {row['question']}", **_PLAIN)
        console.print(f"  A: {row['answer']}", **_PLAIN)
        console.print(f"  object ids per [SEG]: {row['object_ids']}", **_PLAIN)


@app.command()
def run(
    pipeline_file: Annotated[Path, typer.Argument(metavar="PIPELINE.yaml", help="pipeline config")],
    output: Annotated[str, typer.Option("--output", "-o", help="run directory, local or a URI (resumes if it exists)")],
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="video file, folder of videos or frames; a "
                                                     "local path or a URI such as s3://bucket/videos (a source "
                                                     "pipeline lists its own)")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray (default: the pipeline's)")] = None,
    address: Annotated[str | None, typer.Option(help="Ray address to join, e.g. auto")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and print the plan only")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="override a config key: a.b=value")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's own log lines")] = False,
    drop_frames: Annotated[bool, typer.Option("--drop-frames", help="delete the frame store after export")] = False,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="search subfolders")] = True,
    force_new_inputs: Annotated[bool, typer.Option("--force-new-inputs", help="let an existing run directory take "
                                                   "another input set")] = False,
) -> None:
    """Run a pipeline over videos into a run directory; run it again to resume."""
    _run(pipeline_file, inputs or [], output, executor, address, dry_run, overrides or [], verbose, drop_frames,
         recursive, force_new_inputs)


def _open_run(run_dir: str) -> tuple[RunDir, dict]:
    """The run directory and its manifest, or a one-line error (exit 2) when it is not a run."""
    from annotator.rundir import RunDir

    run = RunDir(run_dir)
    try:
        return run, run.read_manifest()
    except FileNotFoundError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@app.command()
def status(run_dir: Annotated[str, typer.Argument(help="a run directory (works while the run is going)")]) -> None:
    """Per-stage accounting of a run, read from its indexes: done, errors, time, nodes, rate, ETA."""
    from annotator.status import LISTED, collect, cost_table, current_errors, stage_table

    rundir, manifest = _open_run(run_dir)
    state = "finished" if manifest.get("finished") else "running or interrupted (run the same command to resume)"
    console.print(f"run {manifest['run_id']} of pipeline {manifest['pipeline']['name']}: {state}", **_PLAIN)
    stats = collect(rundir, manifest)  # the indexes read once, a stage at a time, for every table below
    rows, summary = stage_table(manifest, stats)
    print_whole(console, stage_rows(rows))
    console.print(summary, **_PLAIN)
    costs = _table(("stage", "pool", "GPU s/video", "GPU s/masklet", "requests/s", "out tokens/s"), title="cost")
    for row in cost_table(rundir, stats):
        costs.add_row(row["stage"], *(_figure(row[k]) for k in ("pool", "gpu_s_per_video", "gpu_s_per_masklet",
                                                                 "requests_per_s", "output_tokens_per_s")))
    print_whole(console, costs)
    counts = manifest.get("counts")
    if counts:
        console.print(f"videos: {counts['videos']}  completed: {counts['completed']}  errors: {counts['errors']}  "
                      f"filtered: {counts.get('filtered', 0)}  pending review: {counts.get('pending', 0)}  "
                      f"QA: {counts['qa']}  objects: {counts['objects']}")
        if counts.get("pending"):
            console.print(f"review them: annotator review {run_dir}", **_PLAIN)
    if manifest.get("counters"):
        console.print("counters: " + ", ".join(f"{k}={v}" for k, v in manifest["counters"].items()), **_PLAIN)
    errors, count = current_errors(stats)
    for row in errors:
        console.print(f"  [red]{escape(row['video_id'])}[/red] "
                      + escape(f"({row['path']}) at {row['stage']}: {row['error_type']}: {row['message']}"),
                      highlight=False, soft_wrap=True)
    if count > len(errors):
        console.print(f"  … and {count - len(errors)} more errors (`annotator report {run_dir}` counts them by "
                      "kind; errors.parquet lists every one once the run has ended)", **_PLAIN)
    # the manifest counts skipped inputs: with none, inputs.parquet (a request, and 10^6 rows on S3) stays unread
    skipped, count = rundir.skipped_inputs(LISTED) if (manifest.get("inputs") or {}).get("skipped", 1) else ([], 0)
    if count:
        console.print(f"{count} inputs skipped:", **_PLAIN)
        for row in skipped:
            console.print(f"  {row['path']}: {row['reason']}", **_PLAIN)
        if count > len(skipped):
            console.print(f"  … and {count - len(skipped)} more (inputs.parquet in the run directory)", **_PLAIN)


def _table(columns: tuple[str, ...], title: str | None = None) -> Table:
    """A status table: no vertical rules, no doubled padding (nine columns fit 80 columns at demo sizes)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right", no_wrap=True)
    return table


def print_whole(out: Console, table: Table) -> None:
    """Print a table wider than the terminal rather than cut its cells: Rich shrinks columns to fit, and at 10^6
    videos with a long stage name a count read '1000…' (piped output is 80 columns wide too)."""
    wide = Measurement.get(out, out.options.update(max_width=10_000), table).maximum
    width = out.width
    out.width = max(width, wide)
    try:
        out.print(table)
    finally:
        out.width = width


def stage_rows(rows: list[dict]) -> Table:
    """`annotator status`'s per-stage table."""
    table = _table(("stage", "done", "errors", "filtered", "pending", "busy s", "model s", "nodes", "videos/s"))
    for row in rows:
        table.add_row(row["stage"], str(row["done"]), str(row["errors"]), str(row["filtered"]),
                      str(row["pending"]), f"{row['busy']:.1f}",
                      f"{row['model']:.1f}", str(row["nodes"]), f"{row['rate']:.2f}")
    return table


def _figure(value: float | int | None) -> str:
    """A cost cell: '-' where it does not apply (no GPU, not served, the local executor's pools)."""
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3g}"


@app.command()
def demo(
    output: Annotated[str, typer.Option("--output", "-o", help="run directory")] = "runs/demo",
    executor: Annotated[str | None, typer.Option(help="local or ray (default: ray, embedded)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's own log lines")] = False,
) -> None:
    """Run pipelines/demo.yaml (tiny offline models) on the bundled sample clip."""
    console.print("[bold]demo[/bold]: tiny random-weight models, built locally on first use. Captions, boxes and "
                  "masks are random: the dataset is complete in structure only.")
    _run(paths.PIPELINES_DIR / "demo.yaml", [str(paths.SAMPLES_DIR)], output, executor, None, False, [], verbose)


@app.command("export")
def export_cmd(
    run_dir: Annotated[str, typer.Argument(help="a run directory")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="export format, e.g. parquet or coco (an unknown "
                                                          "one lists them all)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    split: Annotated[str, typer.Option(help="split name (VideoGLaMM layouts)")] = "train",
    rle: Annotated[str, typer.Option(help="compressed or uncompressed (YouTube-VIS ground truth)")] = "compressed",
    max_phrases: Annotated[int, typer.Option(help="grounded phrases kept per caption (VideoGLaMM)")] = 4,
    merge: Annotated[bool, typer.Option("--merge/--parts", help="parquet: one file per table, or the parts")] = True,
) -> None:
    """Write a finished run's dataset in one of the supported formats, video by video."""
    from annotator.export.base import ExportOptions, exporter

    try:
        writer = exporter(fmt)
    except KeyError as exc:
        _fail(str(exc.args[0]))
        return
    if rle not in ("compressed", "uncompressed"):
        _fail(f"--rle {rle}: use compressed or uncompressed")
    run, _ = _open_run(run_dir)
    done = writer.write(run, out, ExportOptions(split, rle, max_phrases, merge))  # type: ignore[arg-type]
    if done.note:
        console.print(done.note, highlight=False)
    console.print(f"{fmt}: {done.videos} videos", highlight=False)
    for path in done.paths:
        console.print(f"  {_shown_path(path)}", **_PLAIN)


def _shown_path(path: str) -> str:
    """A local path made absolute; a URI as it is."""
    from annotator import storage

    return path if storage.is_uri(path) else str(Path(path).resolve())


@app.command()
def report(
    run_dir: Annotated[str, typer.Argument(help="a run directory")],
    out: Annotated[str | None, typer.Option("--out", "-o", help="HTML file (default RUN_DIR/report.html)")] = None,
) -> None:
    """One self-contained HTML file: counts, distributions, top phrases, drop reasons, examples."""
    from annotator.report.render import write_report

    try:
        path = write_report(run_dir, out)
    except FileNotFoundError as exc:
        _fail(str(exc))
        return
    console.print(f"report: {path}", **_PLAIN)


@app.command()
@models_app.command("tiny")
def models_tiny(out_dir: Annotated[Path, typer.Argument(help="where to write one folder per role")]) -> None:
    """Build tiny random-weight checkpoints of every model role (offline)."""
    from annotator.models import tiny

    _quiet_libraries()
    for role, path in tiny.build_all(out_dir).items():
        console.print(f"{role}: {path}")


@models_app.command("rehearsal")
def models_rehearsal(
    out_dir: Annotated[Path, typer.Argument(help="where to write one folder per checkpoint")],
    only: Annotated[list[str] | None, typer.Option(help="checkpoint folder(s) to write (default: production)")] = None,
    count_only: Annotated[bool, typer.Option(help="print parameter counts, write nothing")] = False,
) -> None:
    """Write production-size checkpoints with random weights (offline), each counted against its published size."""
    from annotator.models import rehearsal

    _quiet_libraries()
    folders = list(only or rehearsal.PRODUCTION)
    unknown = [f for f in folders if f not in rehearsal.CHECKPOINTS]
    if unknown:
        _fail(f"unknown checkpoint {unknown[0]!r}; known: {', '.join(rehearsal.CHECKPOINTS)}")
        return
    for folder in folders:
        spec = rehearsal.CHECKPOINTS[folder]
        total, counted = rehearsal.count_parameters(spec)
        off = (counted - spec.published) / spec.published
        part = "" if counted == total else f" ({counted / 1e6:.1f}M in {' + '.join(spec.compared)})"
        where = "" if count_only else f" -> {rehearsal.build(folder, out_dir / folder)}"
        console.print(f"{spec.name}: {total / 1e6:.1f}M parameters{part}, published {spec.published / 1e6:.1f}M "
                      f"({spec.source}): {off:+.1%}{where}", **_PLAIN)


from annotator.review.commands import register as _register_review  # noqa: E402 - the commands attach to `app`
from annotator.train.commands import register as _register_trainer  # noqa: E402

_register_review(app)
_register_trainer(app)


POLLED = ("status", "export", "report")  # what scripts and dashboards run again and again


def main() -> None:
    """The `annotator` command. The polled commands leave without interpreter teardown once their output is
    flushed: native thread pools still alive at exit (Arrow's, started by its first threaded Parquet read, and its
    jemalloc background thread; OpenCV's, started when `cv2` is imported) can abort the teardown (`terminate called
    without an active exception`, exit 134: a joinable `std::thread` destroyed), so a command that did its work
    would report a crash. Nothing they write is pending by then: every file is closed before they return."""
    if len(sys.argv) > 1 and sys.argv[1] in POLLED:
        try:
            app()
            code = 0
        except SystemExit as exc:
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        _exit_now(code)
    app()


if __name__ == "__main__":
    main()
