"""`kntc`: the operator's command line for the case service."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

app = typer.Typer(help="KNTC case service: database, accounts, demo data and the server.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
local = typer.Typer(help="The embedded PostgreSQL of a checkout (`make app`).", no_args_is_help=True)
app.add_typer(local, name="local")
from core_app.dedup.cli import register as _register_dedup; _register_dedup(app)  # noqa: E402, E702, I001
from core_app.web.support_cli import register as _register_support; _register_support(app)  # noqa: E402, E702, I001
console = Console()
err = Console(stderr=True)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL = ROOT / ".data" / "local"
ALEMBIC_DIR = Path(__file__).resolve().parent / "migrations"

# The demo: a ward of Hà Nội, a neighbouring ward, the province, its court, and the Inspectorate.
DEMO_ACCOUNTS = [
    ("tiepdan.badinh", "Nguyễn Thị Lan", "X00004", ["reception"], 0),
    ("xuly.badinh", "Trần Văn Minh", "X00004", ["handling"], 0),
    ("giaiquyet.badinh", "Lê Hoàng Nam", "X00004", ["resolution"], 1),
    ("truong.badinh", "Phạm Quốc Hùng", "X00004", ["head"], 1),
    ("quantri.badinh", "Đỗ Thu Hà", "X00004", ["unit_admin"], 0),
    ("tiepdan.ngocha", "Vũ Minh Tuấn", "X00008", ["reception", "handling"], 0),
    ("truong.hanoi", "Hoàng Văn Đức", "T01", ["head"], 2),
    ("toaan.hanoi", "Bùi Thị Mai", "T01-TAND", ["external_reader"], 0),
    ("quantri.ttcp", "Ngô Thanh Sơn", "VN", ["sysadmin", "unit_admin"], 2),
]


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]kntc: {message}[/red]")
    raise typer.Exit(code)


def _admin_url() -> str:
    url = os.environ.get("KNTC_ADMIN_DATABASE_URL")
    if not url:
        fail("KNTC_ADMIN_DATABASE_URL is not set (the owner role's DSN); for the local cluster: eval $(kntc local env)")
    return url  # type: ignore[return-value]


def _connect_admin():
    import psycopg
    from psycopg.rows import dict_row

    from core_app.waits import OWNER_OPTIONS

    try:
        return psycopg.connect(_admin_url(), row_factory=dict_row, connect_timeout=10, options=OWNER_OPTIONS)
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to the database: {str(exc).strip().splitlines()[0]}")
        raise  # unreachable


@app.command()
def migrate() -> None:
    """Bring the schema to the newest revision (run once per release, as the owner role)."""
    from alembic import command
    from alembic.config import Config

    _admin_url()
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    try:
        command.upgrade(cfg, "head")
    except Exception as exc:  # alembic raises many kinds; one line is what the operator needs
        fail(f"migration failed: {str(exc).strip().splitlines()[0]}")
    console.print("schema is at the newest revision")


@app.command("seed-units")
def seed_units() -> None:
    """Load the unit tree: current units, legacy units with their successors, and the bodies at each level."""
    from core_app.units import COLUMNS, build_units, copy_rows

    with _connect_admin() as conn:
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


def _create_account(conn: Any, username: str, full_name: str, unit: str, roles: list[str], clearance: int,
                    password: str) -> bool:
    from core_app.security import hash_password

    unit_row = conn.execute("SELECT id FROM kntc.unit WHERE code = %s", (unit,)).fetchone()
    if unit_row is None:
        fail(f"no unit with code {unit!r} (see: kntc units --search NAME)")
    cur = conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING RETURNING id",
        (username, full_name, unit_row["id"], roles, clearance, hash_password(password)))
    return cur.fetchone() is not None


@app.command("create-account")
def create_account(
    username: Annotated[str, typer.Option(help="login name: lowercase letters, digits, . _ -")],
    full_name: Annotated[str, typer.Option(help="the officer's full name")],
    unit: Annotated[str, typer.Option(help="unit code, e.g. X00004")],
    role: Annotated[list[str], typer.Option(help="reception, handling, resolution, head, unit_admin, "
                                                 "external_reader, sysadmin (repeat for several)")],
    clearance: Annotated[int, typer.Option(min=0, max=2, help="0 normal, 1 confidential, 2 secret")] = 0,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="KNTC_NEW_PASSWORD")] = "",
) -> None:
    """Create an officer account (as the owner role)."""
    from core_app.security import password_problem

    allowed = {"reception", "handling", "resolution", "head", "unit_admin", "external_reader", "sysadmin"}
    bad = [r for r in role if r not in allowed]
    if bad:
        fail(f"unknown role(s) {', '.join(bad)}; expected: {', '.join(sorted(allowed))}")
    problem = password_problem(password)
    if problem:
        fail(problem)
    import psycopg

    with _connect_admin() as conn:
        try:
            created = _create_account(conn, username.lower(), full_name, unit, role, clearance, password)
        except psycopg.errors.CheckViolation as exc:
            fail(f"invalid account ({exc.diag.constraint_name}): check the username and the role combination")
    console.print(f"account {username} {'created' if created else 'already exists'}")


@app.command("demo-load")
def demo_load(
    password: Annotated[str | None, typer.Option(envvar="KNTC_DEMO_PASSWORD",
                                                 help="password of every demo account (generated if absent)")] = None,
    cases: Annotated[int, typer.Option(min=0, max=100_000, help="demo case files to create")] = 24,
) -> None:
    """Demo accounts in Hà Nội and a set of demo case files in every workflow state."""
    password = password or ("Demo-" + secrets.token_urlsafe(9))
    if _load_demo(password, cases):
        _print_logins(password)
    else:
        console.print("demo accounts already exist (their password was printed when they were created)")


def _load_demo(password: str, cases: int) -> bool:
    with _connect_admin() as conn:
        made = 0
        for username, name, unit, roles, clearance in DEMO_ACCOUNTS:
            made += _create_account(conn, username, name, unit, roles, clearance, password)
        conn.commit()
        existing = conn.execute("SELECT count(*) AS n FROM kntc.case_file").fetchone()["n"]
    if existing == 0 and cases:
        asyncio.run(_demo_cases(cases))
    return made > 0


def _print_logins(password: str) -> None:
    t = Table(title="Tài khoản demo / demo logins")
    for col in ("username", "unit", "roles"):
        t.add_column(col)
    for username, _name, unit, roles, _c in DEMO_ACCOUNTS:
        t.add_row(username, unit, ", ".join(roles))
    console.print(t)
    console.print(f"password for every demo account: [bold]{password}[/bold]")


async def _demo_cases(n: int) -> None:
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from core_app.domain.workflow import Actor
    from core_app.repo import cases as repo
    from core_app.waits import OWNER_OPTIONS

    conn = await AsyncConnection.connect(_admin_url(), row_factory=dict_row, options=OWNER_OPTIONS)
    async with conn:
        book = await repo.load_rulebook(conn)
        cur = await conn.execute(
            "SELECT a.id AS account_id, a.unit_id, a.roles, a.clearance, a.username FROM kntc.account a "
            "WHERE a.username IN ('tiepdan.badinh', 'xuly.badinh', 'giaiquyet.badinh', 'truong.badinh')")
        actors = {r["username"]: Actor(r["account_id"], r["unit_id"], frozenset(r["roles"]), r["clearance"])
                  for r in await cur.fetchall()}
        today = date.today()
        kinds = ["complaint", "denunciation", "recommendation", "complaint", "multi"]
        steps = [[], ["submit"], ["submit", "accept"], ["submit", "accept", "start_verification"],
                 ["submit", "accept", "resolve"], ["submit", "accept", "resolve", "close"], ["submit", "guide"]]
        who = {"submit": "tiepdan.badinh", "accept": "xuly.badinh", "guide": "xuly.badinh",
               "start_verification": "giaiquyet.badinh", "resolve": "giaiquyet.badinh", "close": "truong.badinh"}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("demo case files", total=n)
            for i in range(n):
                kind = kinds[i % len(kinds)]
                received = today - timedelta(days=(i * 3) % 60)
                data = {
                    "kind": kind, "subject": f"Đơn {kind} số {i + 1} về việc bồi thường giải phóng mặt bằng",
                    "content": "Công dân đề nghị xem xét lại quyết định thu hồi đất và mức bồi thường.",
                    "respondent": "UBND phường Ba Đình", "classification": 0,
                    "denouncer_confidential": kind == "denunciation", "channel": "in_person",
                    "complaint_round": 1, "is_complex": False, "is_remote_area": False, "received_on": received,
                    "people_count": 1,
                    "parties": [{"role": "denouncer" if kind == "denunciation" else "complainant",
                                 "party_kind": "person", "full_name": f"Công dân Demo {i + 1}",
                                 "id_number": f"{1000000000 + i:012d}", "address": "Phường Ba Đình, Hà Nội",
                                 "address_unit": "X00004", "phone": None, "email": None}],
                }
                made = await repo.create_case(conn, actors["tiepdan.badinh"], book, data, received)
                version = made["version"]
                for step in steps[i % len(steps)]:
                    params = {"note": "demo", "summary": "Giữ nguyên quyết định (demo)"}
                    res = await repo.transition(conn, actors[who[step]], book, made["code"], step, version, params,
                                                received + timedelta(days=2))
                    version = res["version"]
                progress.update(task, advance=1)
        await conn.commit()
    console.print(f"created {n} demo case files")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 2,
    dev: Annotated[bool, typer.Option(help="uvicorn with reload, for development")] = False,
) -> None:
    """Serve the API (granian, several worker processes)."""
    from pydantic import ValidationError

    from core_app.settings import Settings

    try:
        Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        missing = ", ".join("KNTC_" + str(e["loc"][0]).upper() for e in exc.errors())
        fail(f"settings are missing or invalid: {missing}")
    if dev:
        import uvicorn

        uvicorn.run("core_app.app:app_factory", factory=True, host=host, port=port, reload=True)
        return
    granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
    argv = [granian, "--interface", "asgi", "--factory", "--host", host, "--port", str(port),
            "--workers", str(workers), "--no-ws", "--log-level", "warning", "core_app.app:app_factory"]
    # uvloop when installed (the app extra has it): cheaper awaits on every database round trip.
    import importlib.util

    if importlib.util.find_spec("uvloop"):
        argv[1:1] = ["--loop", "uvloop"]
    os.execv(granian, argv)  # noqa: S606 - the server replaces this process; no shell is involved


# -- the embedded cluster -----------------------------------------------------------------
def _cluster(root: Path, port: int):
    from core_app.localdb import LocalCluster

    return LocalCluster(root=root, port=port)


@local.command("up")
def local_up(
    root: Annotated[Path, typer.Option(help="data folder")] = DEFAULT_LOCAL,
    port: Annotated[int, typer.Option(help="PostgreSQL port on 127.0.0.1")] = 55432,
    app_port: Annotated[int, typer.Option(help="HTTP port of the app on 127.0.0.1")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=16)] = 2,
    serve_app: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Initialise (once) and start PostgreSQL, migrate, seed, then serve the app."""
    from core_app.localdb import LocalDbError

    try:
        env = _cluster(root, port).ensure()
    except LocalDbError as exc:
        fail(str(exc))
    os.environ.update(env)
    migrate()
    seed_units()
    pw_file = root / "demo-password"
    if not pw_file.exists():
        pw_file.write_text("Demo-" + secrets.token_urlsafe(9))
        pw_file.chmod(0o600)
    _load_demo(pw_file.read_text().strip(), 24)
    _print_logins(pw_file.read_text().strip())
    console.print(f"\nPostgreSQL 15: 127.0.0.1:{port} (data in {root / 'pg'})")
    console.print(f"KNTC app:      [bold]http://127.0.0.1:{app_port}/[/bold]  (API docs: /docs)")
    if serve_app:
        serve(host="127.0.0.1", port=app_port, workers=workers, dev=False)


@local.command("env")
def local_env(root: Annotated[Path, typer.Option()] = DEFAULT_LOCAL,
              port: Annotated[int, typer.Option()] = 55432) -> None:
    """Print the environment of the local cluster (eval $(kntc local env))."""
    env = _cluster(root, port).ensure()
    for k, v in env.items():
        print(f"export {k}='{v}'")


@local.command("stop")
def local_stop(root: Annotated[Path, typer.Option()] = DEFAULT_LOCAL,
               port: Annotated[int, typer.Option()] = 55432) -> None:
    """Stop the local PostgreSQL."""
    _cluster(root, port).stop()
    console.print("stopped")


def main() -> None:
    try:
        app()
    except Exception as exc:  # an operator gets one line; KNTC_DEBUG=1 shows the traceback
        if os.environ.get("KNTC_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err.print(f"[red]kntc: {type(exc).__name__}: {first}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
