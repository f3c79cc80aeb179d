"""`kntc deadlines recount`: end the deadline steps recorded open by mistake, and say which."""

from __future__ import annotations

from typing import Annotated

import typer

from core_app.cli.common import connect, console

app = typer.Typer(help="Deadlines: the one-off recount of steps left open.", no_args_is_help=True)


@app.command("recount")
def recount(dry_run: Annotated[bool, typer.Option(help="show what would change, change nothing")] = False) -> None:
    """End every open step whose ending event is on the case's timeline, or whose case is finished;
    print each change, then what is still overdue per rule."""
    from core_app.repo.deadline_steps import recount as run

    with connect("owner", autocommit=True) as conn:
        changed, remaining = run(conn, dry_run=dry_run)
    for r in changed:
        console.print(f"{r['code']}\t{r['step']}\t{r['rule_code']}\thạn / due {r['due_on']}\t"
                      f"xong / met {r['met_on']}\t{r['ended_by']}", highlight=False, markup=False)
    verb = "sẽ sửa / would change" if dry_run else "đã sửa / changed"
    console.print(f"{verb}: {len(changed)} bước thời hạn / deadline steps", highlight=False)
    for r in remaining:
        console.print(f"còn quá hạn / still overdue\t{r['rule_code']}\t{r['open_overdue']}", highlight=False,
                      markup=False)
