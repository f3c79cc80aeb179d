"""`kntc throttle list|set`: the budgets every application host counts against (kntc.throttle_rule).

A capacity test drives more logins from its generators' few addresses than any office does, so its
window raises the budget of calls without a session per address and puts it back afterwards
(infra/ansible/capacity_window.yml). Every change says what the budget was, so it can be restored.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core_app.cli.common import connect, console, fail

app = typer.Typer(help="Request budgets counted in the database (per session, address, account).",
                  no_args_is_help=True)


@app.command("list")
def list_rules() -> None:
    """Every budget: what it counts, the window and how many hits it allows."""
    with connect("owner") as conn:
        rows = conn.execute("SELECT purpose, window_s, max_hits, description FROM kntc.throttle_rule "
                            "ORDER BY purpose").fetchall()
    for r in rows:
        console.print(f"{r['purpose']:14} {r['max_hits']:>10} per {r['window_s']:>7} s  {r['description']}",
                      highlight=False)


@app.command("set")
def set_rule(
    purpose: Annotated[str, typer.Argument(help="the budget's name (kntc throttle list)")],
    max_hits: Annotated[int, typer.Argument(min=1, max=2_000_000_000, help="hits allowed per window")],
) -> None:
    """Change how many hits a budget allows; every host applies it at its next request."""
    with connect("owner") as conn:
        before = conn.execute("SELECT max_hits FROM kntc.throttle_rule WHERE purpose = %s FOR UPDATE",
                              (purpose,)).fetchone()
        if before is None:
            fail(f"no budget named {purpose!r} (kntc throttle list)")
        conn.execute("UPDATE kntc.throttle_rule SET max_hits = %s WHERE purpose = %s", (max_hits, purpose))
    console.print(f"{purpose}: {before['max_hits']} -> {max_hits}", highlight=False)
