"""`kntc deadlines recount`: end the deadline steps recorded open by mistake, and say which;
`kntc deadlines rules …`: the rules, and a new version of one (core_app/cli/deadline_rules.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from core_app.cli import deadline_rules
from core_app.cli.common import connect

app = typer.Typer(help="Deadlines: the rules and their versions; the one-off recount of steps left open.",
                  no_args_is_help=True)
app.add_typer(deadline_rules.app, name="rules")


@app.command("recount")
def recount(dry_run: Annotated[bool, typer.Option(help="show what would change, change nothing")] = False) -> None:
    """End every open step whose ending event is on the case's timeline, or whose case is finished;
    print each change, then what is still overdue per rule."""
    from core_app.repo.deadline_steps import recount as run

    with connect("owner", autocommit=True) as conn:
        changed, remaining = run(conn, dry_run=dry_run)
    # One tab-separated line per change, for the operator's record and for grep.
    for r in changed:
        typer.echo(f"{r['code']}\t{r['step']}\t{r['rule_code']}\thạn / due {r['due_on']}\t"
                   f"xong / met {r['met_on']}\t{r['ended_by']}")
    verb = "sẽ sửa / would change" if dry_run else "đã sửa / changed"
    typer.echo(f"{verb}: {len(changed)} bước thời hạn / deadline steps")
    for r in remaining:
        typer.echo(f"còn quá hạn / still overdue\t{r['rule_code']}\t{r['open_overdue']}")
