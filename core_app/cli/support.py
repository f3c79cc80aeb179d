"""Officers' accounts from the command line: `kntc create-account`, `unlock`, `explain-access`.

`kntc reset-password` is `kntc accounts reset-password` under support's name (core_app/cli/__init__.py).

They run as the owner role (KNTC_ADMIN_DATABASE_URL): support staff act on behalf of an officer
who cannot log in, so no officer session exists to act through. Runbook: runbooks/officer-support.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from core_app.cli.common import connect, console, fail, load_settings

if TYPE_CHECKING:
    from psycopg import Connection

app = typer.Typer()

ROLE_NAMES = ("reception", "handling", "resolution", "head", "unit_admin", "external_reader", "sysadmin")


def insert_account(conn: Connection[dict[str, Any]], username: str, full_name: str, unit: str, roles: list[str],
                   clearance: int, password: str, factor_grace_days: int = 14) -> bool:
    """Create the account unless one has that username; True when it was created.

    An account that must hold a second factor may log in with its password alone for
    `factor_grace_days` (the rollout's grace, as for the accounts that existed before factors),
    and is asked to enrol at each login; after that it needs its factor."""
    from core_app.security import hash_password

    unit_row = conn.execute("SELECT id FROM kntc.unit WHERE code = %s", (unit,)).fetchone()
    if unit_row is None:
        fail(f"no current unit with code {unit!r} (find it: GET /api/units?q=PART_OF_THE_NAME)")
    cur = conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, factor_due_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(days => %s)) "
        "ON CONFLICT (username) DO NOTHING RETURNING id",
        (username, full_name, unit_row["id"], roles, clearance, hash_password(password), factor_grace_days))
    return cur.fetchone() is not None


def _account(conn: Connection[dict[str, Any]], username: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT a.id, a.username, a.full_name, a.is_active, a.roles, a.clearance, a.failed_logins, a.locked_until, "
        "u.code AS unit, u.name AS unit_name, u.path::text AS unit_path, s.code AS scope_unit, "
        "s.path::text AS scope_path FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
        "JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u) WHERE a.username = %s",
        (username.strip().lower(),)).fetchone()
    if row is None:
        fail(f"no account named {username!r}")
    return row


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
    factor_grace_days: Annotated[int, typer.Option(min=0, max=365, help="days an account that needs a second "
                                                   "factor may log in without one (it is asked to enrol)")] = 14,
) -> None:
    """Create an officer account (as the owner role); rosters: `kntc accounts import`."""
    import psycopg

    from core_app.security import password_problem

    bad = [r for r in role if r not in ROLE_NAMES]
    if bad:
        fail(f"unknown role(s) {', '.join(bad)}; expected: {', '.join(sorted(ROLE_NAMES))}")
    problem = password_problem(password)
    if problem:
        fail(problem)
    with connect("owner") as conn:
        try:
            created = insert_account(conn, username.lower(), full_name, unit, role, clearance, password,
                                     factor_grace_days)
        except psycopg.errors.CheckViolation as exc:
            fail(f"invalid account ({exc.diag.constraint_name}): check the username and the role combination")
    console.print(f"account {username} {'created' if created else 'already exists'}")


@app.command("unlock")
def unlock(username: Annotated[str, typer.Argument(help="the officer's username")]) -> None:
    """Lift a lock on an account and forget its failed logins (from every address)."""
    with connect("owner") as conn:
        acc = _account(conn, username)
        conn.execute("UPDATE kntc.account SET failed_logins = 0, locked_until = NULL WHERE id = %s", (acc["id"],))
        conn.execute("DELETE FROM kntc.throttle WHERE (purpose = 'login_account' AND key = %(u)s) "
                     "OR (purpose = 'login_pair' AND starts_with(key, %(u)s || '|'))", {"u": acc["username"]})
    was = "was locked until " + acc["locked_until"].isoformat() if acc["locked_until"] else "was not locked"
    console.print(f"unlocked {acc['username']} ({was}; {acc['failed_logins']} failed login(s) cleared)")


@app.command("explain-access")
def explain_access(
    username: Annotated[str, typer.Argument(help="the officer's username")],
    code: Annotated[str, typer.Argument(help="the case code, e.g. X00004-2026-000001")],
) -> None:
    """Say whether an officer can see (and act on) a case, and if not, which rule stops it."""
    from core_app.settings import OperatorSettings

    # Live: not expired and not idle past the limit the gate applies (the same setting).
    idle_s = load_settings(OperatorSettings).idle_seconds
    with connect("owner") as conn:
        acc = _account(conn, username)
        case = conn.execute(
            "SELECT c.code, c.status, c.classification, hu.code AS handling_unit, hu.name AS handling_name, "
            "ru.code AS receiving_unit, c.handling_unit_path <@ %(scope)s::ltree AS handling_in_area, "
            "c.receiving_unit_path <@ %(scope)s::ltree AS receiving_in_area, c.denouncer_confidential "
            "FROM kntc.case_file c JOIN kntc.unit hu ON hu.id = c.handling_unit_id "
            "JOIN kntc.unit ru ON ru.id = c.receiving_unit_id WHERE c.code = %(code)s",
            {"scope": acc["scope_path"], "code": code.strip().upper()}).fetchone()
        if case is None:
            fail(f"no case with code {code!r} (check the code on the receipt)")
        sessions = conn.execute("SELECT count(*) AS n FROM kntc.session WHERE account_id = %s "
                                "AND expires_at > now() AND last_seen_at > now() - make_interval(secs => %s)",
                                (acc["id"], idle_s)).fetchone()["n"]
    reasons = []
    if not acc["is_active"]:
        reasons.append("the account is disabled (is_active = false)")
    if not (case["handling_in_area"] or case["receiving_in_area"]):
        reasons.append(f"the case is held by {case['handling_unit']} and was received by "
                       f"{case['receiving_unit']}: neither is inside the officer's area {acc['scope_unit']}")
    if case["classification"] > acc["clearance"]:
        reasons.append(f"the case is classified {case['classification']} and the officer's clearance is "
                       f"{acc['clearance']}")
    console.print(f"officer {acc['username']} ({acc['full_name']}), unit {acc['unit']} {acc['unit_name']}, "
                  f"area {acc['scope_unit']}, roles {', '.join(acc['roles'])}, clearance {acc['clearance']}, "
                  f"{sessions} live session(s)")
    console.print(f"case {case['code']}: status {case['status']}, held by {case['handling_unit']} "
                  f"({case['handling_name']}), classification {case['classification']}")
    if reasons:
        console.print("CANNOT SEE: " + "; ".join(reasons))
        raise typer.Exit(2)
    console.print("CAN SEE the case" + (
        "; may act on it (same unit)" if case["handling_unit"] == acc["unit"] and
        "external_reader" not in acc["roles"] else "; read only (another unit holds it, or a read account)"))
    if case["denouncer_confidential"]:
        console.print("note: the denouncer's identity is shown only to the creator, the assigned officers "
                      "and the head of the holding unit")
