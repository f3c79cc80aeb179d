"""`kntc demo-load`: demo accounts in Hà Nội and demo case files in every workflow state."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date, timedelta
from typing import Annotated

import typer

from core_app.cli.common import connect, connect_async, console
from core_app.cli.support import insert_account

app = typer.Typer()

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


def new_password() -> str:
    return "Demo-" + secrets.token_urlsafe(9)


@app.command("demo-load")
def demo_load(
    password: Annotated[str | None, typer.Option(envvar="KNTC_DEMO_PASSWORD",
                                                 help="password of every demo account (generated if absent)")] = None,
    cases: Annotated[int, typer.Option(min=0, max=100_000, help="demo case files to create")] = 24,
) -> None:
    """Demo accounts in Hà Nội and a set of demo case files in every workflow state."""
    password = password or new_password()
    if load_demo(password, cases):
        print_logins(password)
    else:
        console.print("demo accounts already exist (their password was printed when they were created)")


def load_demo(password: str, cases: int) -> bool:
    """Create the demo accounts and, on a database without case files, `cases` of them; True when
    the accounts were created now."""
    with connect("owner") as conn:
        made = 0
        for username, name, unit, roles, clearance in DEMO_ACCOUNTS:
            # Demo accounts show the product, not the enrolment: a year before they need a factor.
            made += insert_account(conn, username, name, unit, roles, clearance, password, factor_grace_days=365)
        conn.commit()
        existing = conn.execute("SELECT count(*) AS n FROM kntc.case_file").fetchone()["n"]
    if existing == 0 and cases:
        asyncio.run(_demo_cases(cases))
    return made > 0


def print_logins(password: str) -> None:
    from rich.table import Table

    t = Table(title="Tài khoản demo / demo logins")
    for col in ("username", "unit", "roles"):
        t.add_column(col)
    for username, _name, unit, roles, _c in DEMO_ACCOUNTS:
        t.add_row(username, unit, ", ".join(roles))
    console.print(t)
    console.print(f"password for every demo account: [bold]{password}[/bold]")


async def _demo_cases(n: int) -> None:
    # The repository layer is async (it is the API's): the demo cases go through the same code.
    from psycopg.types.json import Jsonb
    from rich.progress import Progress

    from core_app.domain.workflow import Actor
    from core_app.repo import cases as repo

    conn = await connect_async("owner")
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
                # The demo's officer ran the duplicate check, as every intake does (recorded as theirs).
                clerk = actors["tiepdan.badinh"]
                cur = await conn.execute(
                    "INSERT INTO kntc.dedup_check (account_id, unit_id, unit_path, query, candidates) "
                    "SELECT %s, u.id, u.path, %s, '[]' FROM kntc.unit u WHERE u.id = %s RETURNING id",
                    (clerk.account_id, Jsonb({"parties": data["parties"]}), clerk.unit_id))
                data["dedup_check_id"] = (await cur.fetchone())["id"]
                made = await repo.create_case(conn, clerk, book, data, received)
                version = made["version"]
                for step in steps[i % len(steps)]:
                    params = {"note": "demo", "summary": "Giữ nguyên quyết định (demo)"}
                    res = await repo.transition(conn, actors[who[step]], book, made["code"], step, version, params,
                                                received + timedelta(days=2))
                    version = res["version"]
                progress.update(task, advance=1)
        await conn.commit()
    console.print(f"created {n} demo case files")
