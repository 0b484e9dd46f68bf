"""`annotator review RUN_DIR` (the review server) and `annotator review import RUN_DIR FILE` (CVAT edits)."""

from __future__ import annotations

from typing import Annotated

import typer

from annotator.terminal import PLAIN as _PLAIN
from annotator.terminal import console
from annotator.terminal import fail as _fail


def _open_run(run_dir: str) -> None:
    from annotator.rundir import RunDir

    try:
        RunDir(run_dir).read_manifest()
    except FileNotFoundError as exc:
        _fail(str(exc))


def review(
    args: Annotated[list[str], typer.Argument(metavar="RUN_DIR | import RUN_DIR FILE",
                                              help="serve RUN_DIR's review queue, or import an edited CVAT file")],
    host: Annotated[str, typer.Option(help="address to bind; anything but 127.0.0.1 requires a token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free one)")] = 8765,
    token: Annotated[str | None, typer.Option(help="access token (generated when binding beyond localhost)")] = None,
    reviewer: Annotated[str, typer.Option(help="reviewer name recorded by `import`")] = "cvat-import",
) -> None:
    """Review pending items in the browser (accept, reject, rename, drop, merge, edit captions, fix masks with
    clicks), or turn an edited CVAT for video 1.1 file into decisions: `annotator review import RUN FILE`."""
    if args and args[0] == "import":
        if len(args) != 3:
            _fail("usage: annotator review import RUN_DIR FILE.xml")
        _review_import(args[1], args[2], reviewer)
        return
    if len(args) != 1:
        _fail("usage: annotator review RUN_DIR [--host H] [--port P] [--token T]")
    _serve(args[0], host, port, token)


def _serve(run_dir: str, host: str, port: int, token: str | None) -> None:
    import secrets

    import uvicorn

    from annotator.review.server import create_app

    _open_run(run_dir)
    local = host in ("127.0.0.1", "localhost", "::1")
    if not local and not token:
        token = secrets.token_urlsafe(18)
    try:
        app_ = create_app(run_dir, token)
    except ValueError as exc:
        _fail(str(exc))
        return
    shown = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"review server: {shown}  (Ctrl-C to stop; decisions are saved as you make them)", **_PLAIN)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


def _review_import(run_dir: str, file: str, reviewer: str) -> None:
    from annotator.export.cvat import CvatImportError, import_decisions

    _open_run(run_dir)
    try:
        counts = import_decisions(run_dir, file, reviewer)
    except (CvatImportError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print("imported decisions: " + (", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"),
                  **_PLAIN)


def register(app: typer.Typer) -> None:
    app.command()(review)
