"""`kntc serve`: the API and the web pages (granian, several worker processes; uvicorn with --dev)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core_app.cli.common import fail, first_line, load_settings

if TYPE_CHECKING:
    from core_app.settings import Settings

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 2,
    dev: Annotated[bool, typer.Option(help="uvicorn with reload, for development")] = False,
) -> None:
    """Serve the API (granian, several worker processes)."""
    from core_app.settings import Settings

    # Checked here so that a missing variable is one line, not a traceback in every worker.
    settings = load_settings(Settings)
    if settings.database_pooler == "pgbouncer":
        _check_pooler(settings)
    if dev:
        import uvicorn

        uvicorn.run("core_app.app:app_factory", factory=True, host=host, port=port, reload=True)
        return
    # The workers share their metrics through files (core_app.metrics); last run's are stale.
    from core_app.metrics import MULTIPROC_ENV

    shared = Path(os.environ.get(MULTIPROC_ENV) or Path(tempfile.gettempdir()) / f"kntc-metrics-{port}")
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(mode=0o700, parents=True)
    os.environ[MULTIPROC_ENV] = str(shared)
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    argv = [granian, "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
            "--workers", str(workers), "--no-ws", "--log-level", "warning", "core_app.app:app_factory"]
    # uvloop when installed (the app extra has it): cheaper awaits on every database round trip.
    if importlib.util.find_spec("uvloop"):
        argv[1:1] = ["--loop", "uvloop"]
    os.execv(granian, argv)  # noqa: S606 - the server replaces this process; no shell is involved


def _check_pooler(settings: Settings) -> None:
    """Before any worker starts: the pooler's server connections bound the waits (one line if not).
    The workers check again when their pools open."""
    import psycopg

    from core_app.waits import APP_WAITS, WAITS_SQL, app_connection, waits_problem

    try:
        with psycopg.connect(settings.database_url, autocommit=True, **app_connection(settings)) as conn:
            got = dict(conn.execute(WAITS_SQL, (list(APP_WAITS),)).fetchall())
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to the database through the pooler: {first_line(exc)}")
    problem = waits_problem(got, settings)
    if problem:
        fail(problem)
