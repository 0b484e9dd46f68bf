"""The `annotator` command: run, status, demo, models tiny.

Mistakes in configs or inputs print one line (file, key, fix) and exit with code 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from annotator import paths
from annotator.config import ConfigError, load_config

if TYPE_CHECKING:
    from annotator.rundir import RunDir

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Videos in, grounded video conversations out.")
models_app = typer.Typer(no_args_is_help=True, help="Model checkpoints.")
app.add_typer(models_app, name="models")
console = Console()
err = Console(stderr=True)
_PLAIN = {"highlight": False, "soft_wrap": True, "markup": False}  # paths and answers print whole, copyable


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("ray").setLevel(logging.WARNING)


def _print_plan(pipeline_rows: list[dict], title: str) -> None:
    console.print(f"[bold]{title}[/bold]", soft_wrap=True)
    for row in pipeline_rows:
        models = " ".join(f"{k}={v}" for k, v in row["models"].items() if v) or "no model"
        console.print(
            f"  {row['stage']:<9} {models}  cpus={row['cpus']} gpus={row['gpus']} "
            f"concurrency={row['concurrency']} batch={row['batch_size']}",
            soft_wrap=True, highlight=False,
        )


def _run(pipeline_file: Path, inputs: list[Path], output: Path, executor: str | None, address: str | None,
         dry_run: bool, overrides: list[str]) -> None:
    from annotator.pipeline import Pipeline

    try:
        config = load_config(pipeline_file, overrides)
        pipeline = Pipeline(config, str(pipeline_file))
    except ConfigError as exc:
        _fail(str(exc))
        return
    if executor not in (None, "local", "ray"):
        _fail(f"--executor {executor}: use local or ray")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        _fail(f"input {missing[0]} does not exist: pass video files, folders of videos or folders of frames")
    from annotator.video import list_inputs

    if not list_inputs(inputs):
        _fail(f"no videos or frame folders found in {', '.join(map(str, inputs))}")
    kind = executor or config.executor.kind
    try:
        pipeline.check_executor(kind)
    except ConfigError as exc:
        _fail(str(exc))
    _print_plan(pipeline.describe(), f"{config.name}: {kind} executor -> {output}")
    if dry_run:
        console.print("[green]config valid[/green] (dry run: no model loaded, nothing written)")
        return
    _quiet_libraries()
    summary = pipeline.run(inputs, output, executor=kind, address=address)
    console.print(
        f"[bold]{summary.completed}/{summary.videos} videos done[/bold], {summary.errors} errors, "
        f"{summary.qa} QA triplets, {summary.objects} objects in {summary.seconds:.1f}s"
    )
    if summary.reused:
        console.print("reused from earlier runs: " + ", ".join(f"{k}: {v}" for k, v in summary.reused.items()))
    _print_sample(summary.run_dir)
    console.print(f"run directory: {summary.run_dir.resolve()}", **_PLAIN)
    console.print(f"dataset (Parquet): {(summary.run_dir / 'export' / 'parquet').resolve()}", **_PLAIN)
    if summary.errors:
        console.print(f"errors: {(summary.run_dir / 'errors.parquet').resolve()} (see `annotator status`)", **_PLAIN)


def _print_sample(run_dir: Path) -> None:
    """Show one triplet, so the user sees what the dataset looks like."""
    import pyarrow.parquet as pq

    qa_path = run_dir / "export" / "parquet" / "qa.parquet"
    rows = pq.read_table(qa_path).slice(0, 1).to_pylist() if qa_path.exists() else []
    for row in rows:
        console.print(f"example [{row['video_id']}] Q: {row['question']}", **_PLAIN)
        console.print(f"  A: {row['answer']}", **_PLAIN)
        console.print(f"  object ids per [SEG]: {row['object_ids']}", **_PLAIN)


@app.command()
def run(
    pipeline_file: Annotated[Path, typer.Argument(metavar="PIPELINE.yaml", help="pipeline config")],
    inputs: Annotated[list[Path], typer.Option("--input", "-i", help="video file, folder of videos or frames")],
    output: Annotated[Path, typer.Option("--output", "-o", help="run directory (resumes if it exists)")],
    executor: Annotated[str | None, typer.Option(help="local or ray (default: the pipeline's)")] = None,
    address: Annotated[str | None, typer.Option(help="Ray address to join, e.g. auto")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and print the plan only")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="override a config key: a.b=value")] = None,
) -> None:
    """Run a pipeline over videos into a run directory; run it again to resume."""
    _run(pipeline_file, inputs, output, executor, address, dry_run, overrides or [])


def _open_run(run_dir: Path) -> tuple[RunDir, dict]:
    """The run directory and its manifest, or a one-line error (exit 2) when it is not a run."""
    from annotator.rundir import RunDir

    run = RunDir(run_dir)
    try:
        return run, run.read_manifest()
    except FileNotFoundError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Counts of a run: videos done, errors (with reasons), QA triplets, objects."""
    rundir, manifest = _open_run(run_dir)
    counts = manifest.get("counts")
    state = "finished" if manifest.get("finished") else "unfinished (run the same command again to resume)"
    console.print(f"run {manifest['run_id']} of pipeline {manifest['pipeline']['name']}: {state}")
    table = Table()
    table.add_column("stage")
    table.add_column("videos done", justify="right")
    for row in manifest["stages"]:  # flow order (the fingerprints mapping is stored sorted)
        table.add_row(row["stage"], str(len(rundir.completed_videos(row["stage"]))))
    console.print(table)
    if counts:
        console.print(f"videos: {counts['videos']}  completed: {counts['completed']}  errors: {counts['errors']}  "
                      f"QA: {counts['qa']}  objects: {counts['objects']}")
    if manifest.get("counters"):
        console.print("counters: " + ", ".join(f"{k}={v}" for k, v in manifest["counters"].items()), **_PLAIN)
    errors = rundir.read_errors().to_pylist()
    for row in errors:
        console.print(f"  [red]{row['video_id']}[/red] ({row['path']}) at {row['stage']}: "
                      f"{row['error_type']}: {row['message']}", highlight=False)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="run directory")] = Path("runs/demo"),
    executor: Annotated[str | None, typer.Option(help="local or ray (default: ray, embedded)")] = None,
) -> None:
    """Run pipelines/demo.yaml (tiny offline models) on the bundled sample clip."""
    console.print("[bold]demo[/bold]: tiny random-weight models, built locally on first use. Captions, boxes and "
                  "masks are random: the dataset is complete in structure only.")
    _run(paths.PIPELINES_DIR / "demo.yaml", [paths.SAMPLES_DIR], output, executor, None, False, [])


EXPORT_FORMATS = ("parquet", "coco", "ytvis", "videoglamm-a", "videoglamm-b")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="|".join(EXPORT_FORMATS))],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")],
    split: Annotated[str, typer.Option(help="split name (VideoGLaMM layouts)")] = "train",
    rle: Annotated[str, typer.Option(help="compressed or uncompressed (YouTube-VIS ground truth)")] = "compressed",
    max_phrases: Annotated[int, typer.Option(help="grounded phrases kept per caption (VideoGLaMM)")] = 4,
) -> None:
    """Write a finished run's dataset in one of the supported formats."""
    if fmt not in EXPORT_FORMATS:
        _fail(f"--format {fmt}: use one of {', '.join(EXPORT_FORMATS)}")
    if rle not in ("compressed", "uncompressed"):
        _fail(f"--rle {rle}: use compressed or uncompressed")
    run, manifest = _open_run(run_dir)
    items = run.final_items()
    if fmt == "parquet":
        from annotator.export.parquet import write_parquet

        written = list(write_parquet(items, out, manifest["pipeline"]["name"], manifest["run_id"],
                                     manifest["fingerprints"]).values())
    elif fmt == "coco":
        from annotator.export.coco import write_coco

        written = [write_coco(items, out)]
    elif fmt == "ytvis":
        from annotator.export.ytvis import write_ytvis

        written = [write_ytvis(items, out, rle)]  # type: ignore[arg-type]
    elif fmt == "videoglamm-a":
        from annotator.export.videoglamm import write_format_a

        count = write_format_a(items, out, split, max_phrases)
        written = [out / "vidstg_gcg"]
        console.print(f"{count} of {len(items)} videos have grounded phrases", highlight=False)
    else:
        from annotator.export.videoglamm import write_format_b

        written = [write_format_b(items, out, split, max_phrases, rle)]  # type: ignore[arg-type]
    console.print(f"{fmt}: {len(items)} videos", highlight=False)
    for path in written:
        console.print(f"  {path.resolve()}", **_PLAIN)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default RUN_DIR/report.html)")] = None,
) -> None:
    """One self-contained HTML file: counts, distributions, top phrases, drop reasons, examples."""
    from annotator.report.render import write_report

    try:
        path = write_report(run_dir, out)
    except FileNotFoundError as exc:
        _fail(str(exc))
        return
    console.print(f"report: {path.resolve()}", **_PLAIN)


@models_app.command("tiny")
def models_tiny(out_dir: Annotated[Path, typer.Argument(help="where to write one folder per role")]) -> None:
    """Build tiny random-weight checkpoints of every model role (offline)."""
    from annotator.models import tiny

    _quiet_libraries()
    for role, path in tiny.build_all(out_dir).items():
        console.print(f"{role}: {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
