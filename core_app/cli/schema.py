"""`kntc migrate` and `kntc seed-units`: the schema and the data it cannot work without, as the owner."""

from __future__ import annotations

from pathlib import Path

import typer

from core_app.cli.common import connect, console, dsn, fail, first_line

app = typer.Typer()
ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "migrations"


@app.command()
def migrate() -> None:
    """Bring the schema to the newest revision (run once per release, as the owner role)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    # The owner's DSN as every command resolves it; Alembic's options interpolate "%".
    cfg.set_main_option("sqlalchemy.url", dsn("owner").replace("%", "%%"))
    try:
        command.upgrade(cfg, "head")
    except Exception as exc:  # alembic raises many kinds; one line is what the operator needs
        fail(f"migration failed: {first_line(exc)}")
    console.print("schema is at the newest revision")
    install_planned()


def install_planned() -> None:
    """The planned statements of this release (core_app/repo/planned.py), after the migrations."""
    import psycopg

    from core_app.repo import planned

    with connect("owner") as conn:
        try:
            names = planned.install(conn)
        except psycopg.Error as exc:
            fail(f"installing the planned statements failed: {first_line(exc)}")
    console.print(f"planned statements installed: {len(names)}")


@app.command("seed-units")
def seed_units() -> None:
    """Load the unit tree: current units, legacy units with their successors, and the bodies at each level."""
    from rich.progress import Progress

    from core_app.units import COLUMNS, build_units, copy_rows

    with connect("owner") as conn:
        n = conn.execute("SELECT count(*) AS n FROM kntc.unit").fetchone()["n"]
        if n:
            console.print(f"units already loaded ({n}); nothing to do")
            return
        rows = build_units()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("loading units", total=len(rows))
            with conn.cursor() as cur, cur.copy(f"COPY kntc.unit ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for i, row in enumerate(copy_rows(rows)):
                    copy.write_row(row)
                    if i % 2000 == 0:
                        progress.update(task, completed=i)
        conn.execute("SELECT setval(pg_get_serial_sequence('kntc.unit', 'id'), (SELECT max(id) FROM kntc.unit))")
        console.print(f"loaded {len(rows)} units")
