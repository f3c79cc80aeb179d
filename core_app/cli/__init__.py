"""`kntc`: the operator's command line for the case service.

Each module holds the commands of one concern and a Typer `app`; this file puts them together.
A module's plain commands join the top level (`app.add_typer(module.app)`), a group gets a name
(`app.add_typer(module.app, name="local")` makes `kntc local ...`). The modules import
`core_app.cli.common` (and each other), never `core_app.cli` itself, and import psycopg, alembic and
the app lazily, inside their commands, so that `kntc --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from core_app.cli import (
    accounts,
    audit,
    cases,
    deadlines,
    demo,
    exchange,
    local,
    notify,
    schema,
    serve,
    support,
    throttle,
)
from core_app.cli.common import err, first_line

app = typer.Typer(help="KNTC case service: database, accounts, demo data and the server.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(schema.app)
app.add_typer(demo.app)
app.add_typer(serve.app)
app.add_typer(cases.app)
app.add_typer(support.app)
# Support's name for the one password reset (runbooks/officer-support.md): the very same command, so
# no second path can set a password the officer keeps.
app.command("reset-password", help="The same command as `kntc accounts reset-password`: "
            + (accounts.reset_password.__doc__ or ""))(accounts.reset_password)
app.add_typer(local.app, name="local")
app.add_typer(audit.app, name="audit")
app.add_typer(accounts.app, name="accounts")
app.add_typer(exchange.app, name="exchange")
app.add_typer(throttle.app, name="throttle")
app.add_typer(deadlines.app, name="deadlines")
app.add_typer(notify.app, name="notify")


def main() -> None:
    try:
        app()
    except Exception as exc:  # an operator gets one line; KNTC_DEBUG=1 shows the traceback
        if os.environ.get("KNTC_DEBUG"):
            raise
        err.print(f"kntc: {type(exc).__name__}: {first_line(exc)}", style="red", markup=False, highlight=False)
        sys.exit(1)
