"""What the CLI shows while a run goes: one progress bar over videos, and Ray's own lines kept off the terminal."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
err = Console(stderr=True)
PLAIN = {"highlight": False, "soft_wrap": True, "markup": False}  # paths and answers print whole, copyable


def fail(message: str, code: int = 2) -> None:
    """One red line on stderr and the exit code (2: a usage or config mistake), never a traceback. The message is
    escaped: a path such as `clip [HD].mp4` would lose its brackets as markup, and `[/b]` raised MarkupError."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def captured_stderr(err: Console, enabled: bool) -> Iterator[None]:
    """Ray's C++ core worker writes its own lines to file descriptor 2; without --verbose they go to a log file
    and this CLI's messages to the terminal's stderr (a duplicate of the original descriptor). The log is kept,
    and named, only when the run fails: it may then hold the reason."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    log = tempfile.NamedTemporaryFile(prefix="annotator-ray-", suffix=".log", delete=False)
    os.dup2(log.fileno(), 2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    previous = err.file
    err.file = terminal
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        err.file = previous
        terminal.close()
        log.close()
        if failed and os.path.getsize(log.name):
            err.print(f"Ray's own messages: {log.name}", highlight=False)
        else:
            os.unlink(log.name)


class VideoProgress:
    """One progress bar over videos, fed by the executor's status rows (the Ray executor has no other display)."""

    def __init__(self, err: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.errors = 0
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err, disable=not enabled)
        self.bar = self.progress.add_task("videos", total=None)

    def start(self, total: int, finished: int) -> None:
        self.progress.update(self.bar, total=total, completed=finished)

    def update(self, row: dict[str, str]) -> None:
        self.errors += row["status"] == "error"
        self.progress.update(self.bar, advance=1, description=f"videos ({self.errors} errors)")

    def __enter__(self) -> VideoProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)
