"""`kntc accounts ...`: rosters, the lifecycle of one account, sessions and the directory reports.

They run as the owner role (KNTC_ADMIN_DATABASE_URL) on the migrate host: the operator's authority,
recorded as such with the operating system user in the access log. `import --by ADMIN` applies that
administrator's granting limits instead. Every change goes through the database's one door
(`kntc.account_admin`) and needs a reason. Runbook: runbooks/accounts.md.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import os
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any

import typer

from core_app.cli.common import connect_async, console, err, fail

app = typer.Typer(help="Officers' accounts: rosters, lifecycle, sessions, reports.", no_args_is_help=True)
Reason = Annotated[str, typer.Option("--reason", "-r", help="why (5 to 500 characters): kept in the access log")]
User = Annotated[str, typer.Argument(help="the officer's username")]
HASH_CHUNK = 2_000


def _operator() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _run(work: Callable[[Any], Awaitable[Any]]) -> Any:
    """`work(conn)` in one owner transaction; one line and a non-zero exit for a refusal."""
    from core_app.repo.account_admin import AdminRefused

    async def go() -> Any:
        conn = await connect_async("owner")
        async with conn:
            return await work(conn)

    try:
        return asyncio.run(go())
    except AdminRefused as exc:
        fail(exc.en)


def _hash_chunk(passwords: list[str]) -> list[str]:
    from core_app.roster.load import hash_all

    return hash_all(passwords)


def _parallel_hasher(workers: int) -> Callable[[list[str], Any], Awaitable[list[str]]]:
    """Initial-password hashes over `workers` processes (a national roster: 162,318 of them)."""

    async def hash_many(passwords: list[str], progress: Any) -> list[str]:
        loop = asyncio.get_running_loop()
        chunks = [passwords[i:i + HASH_CHUNK] for i in range(0, len(passwords), HASH_CHUNK)]
        done = 0

        def tick(f: asyncio.Future[list[str]]) -> None:
            nonlocal done
            if not f.cancelled() and f.exception() is None:
                done += len(f.result())
                progress("hash", done, len(passwords))

        # spawn, not fork: the parent holds a database connection and an event loop.
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [loop.run_in_executor(pool, _hash_chunk, c) for c in chunks]
            for f in futures:
                f.add_done_callback(tick)
            parts = await asyncio.gather(*futures)
        return [h for part in parts for h in part]

    return hash_many


@app.command("import")
def import_roster(
    file: Annotated[Path, typer.Argument(help="roster, CSV or XLSX (columns: runbooks/accounts.md)")],
    dry_run: Annotated[bool, typer.Option(help="check every row and the usernames, write nothing")] = False,
    by: Annotated[str | None, typer.Option(help="import on this administrator's authority (their limits)")] = None,
    reason: Annotated[str, typer.Option(help="why, for the access log")] = "triển khai tài khoản / account rollout",
    credentials: Annotated[Path | None, typer.Option(help="where to write the initial passwords (mode 0600); "
                                                          "default: initial-passwords-<file>-<time>.csv here")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="processes hashing the initial passwords")] = (
        os.cpu_count() or 1),
) -> None:
    """Create the accounts of a roster: every row checked first; all created, or none."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core_app.roster import credentials as creds
    from core_app.roster import format, load

    if not file.is_file():
        fail(f"no such file: {file}")
    data = file.read_bytes()
    try:
        rows = format.read(data, file.name)
    except format.RosterUnreadable as exc:
        fail(f"{file}: {exc.vi} / {exc.en}")
    target = credentials or Path(f"initial-passwords-{file.stem}-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    if not dry_run and target.exists():
        fail(f"{target} exists: the initial passwords are never written over a file")
    t0 = time.monotonic()
    labels = {"check": "kiểm tra / checking", "hash": "mật khẩu ban đầu / initial passwords", "write": "ghi / writing"}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=not sys.stdout.isatty()) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels[stage], total=total or 1)
            bar.update(tasks[stage], completed=done, total=total or 1)

        async def work(conn: Any) -> load.Outcome:
            importer = load.Importer(label=f"{_operator()} (operator)")
            if by:
                cur = await conn.execute("SELECT id FROM kntc.account WHERE username = %s AND is_active "
                                         "AND roles && ARRAY['unit_admin', 'sysadmin']", (by.strip().lower(),))
                row = await cur.fetchone()
                if row is None:
                    fail(f"--by {by}: no active administrator with this username")
                importer = load.Importer(admin_id=row["id"], label=f"{by} via {_operator()}")
            async with conn.transaction():
                return await load.run(conn, rows, importer, dry_run=dry_run, file_sha256=load.sha256_of(data),
                                      reason=reason, hash_many=_parallel_hasher(workers), progress=progress)

        out: load.Outcome = _run(work)
    seconds = time.monotonic() - t0
    for e in out.errors:
        err.print(f"dòng / line {e.line}: {e}", markup=False, highlight=False)
    if out.errors:
        fail(f"{len(out.errors)} lỗi ở {len({e.line for e in out.errors})} dòng, không tạo tài khoản nào / "
             f"{len(out.errors)} error(s) on {len({e.line for e in out.errors})} row(s): nothing was created")
    if dry_run:
        console.print(f"kiểm tra xong, chưa ghi / checked, nothing written: would create {len(out.created)}, "
                      f"unchanged {len(out.unchanged)}", highlight=False)
        return
    if out.created:
        creds.write_private(target, out.created)
    console.print(f"created {len(out.created)}, unchanged {len(out.unchanged)}", highlight=False)
    if out.created:
        console.print(f"initial passwords: {target} (mode 0600; hand each to its officer, then delete the file)",
                      highlight=False)
    console.print(f"import_seconds={seconds:.1f} accounts={len(out.created)}", highlight=False)


def _act(username: str, action: str, reason: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    from core_app.repo import account_admin

    async def work(conn: Any) -> dict[str, Any]:
        return await account_admin.act(conn, username, action, reason, {**(args or {}), "operator": _operator()})

    return _run(work)


def _said(detail: dict[str, Any]) -> None:
    before, after = detail["before"], detail["after"]
    changed = ", ".join(f"{k}: {before[k]} -> {after[k]}" for k in after if before.get(k) != after[k]) or "no field"
    console.print(f"{detail['action']} {detail['target']}: {changed}; {detail['sessions_ended']} session(s) ended",
                  highlight=False)
    if detail.get("initial_password"):
        console.print(f"initial password (one login, then it must be changed): {detail['initial_password']}",
                      highlight=False)


@app.command()
def disable(username: User, reason: Reason) -> None:
    """Disable an account: its sessions end at once and it cannot log in."""
    _said(_act(username, "disable", reason))


@app.command()
def enable(username: User, reason: Reason) -> None:
    """Enable a disabled account again."""
    _said(_act(username, "enable", reason))


@app.command("set-roles")
def set_roles(username: User, reason: Reason,
              role: Annotated[list[str], typer.Option(help="the roles it will have (repeat)")]) -> None:
    """Replace an account's roles."""
    _said(_act(username, "set_roles", reason, {"roles": role}))


@app.command()
def move(username: User, reason: Reason, unit: Annotated[str, typer.Option(help="the new unit's code")]) -> None:
    """Move an officer to another unit (their sessions end: what they may see changes)."""
    _said(_act(username, "set_unit", reason, {"unit": unit}))


@app.command("set-clearance")
def set_clearance(username: User, reason: Reason,
                  clearance: Annotated[int, typer.Argument(min=0, max=2, help="0 normal, 1 confidential, 2 secret")]
                  ) -> None:
    """Change an account's clearance."""
    _said(_act(username, "set_clearance", reason, {"clearance": clearance}))


@app.command("reset-password")
def reset_password(
    username: User,
    reason: Reason,
    password: Annotated[str | None, typer.Option(hidden=True, help="gone: support never chooses the password")
                        ] = None,
) -> None:
    """A new one-time initial password (printed once): the account is unlocked, its sessions end, and
    at the next login the officer can only choose a new password. Nobody else chooses or keeps it."""
    if password is not None:
        # The old support command took one; say why it is gone rather than "no such option".
        fail("--password is gone: a reset issues a one-time initial password the officer must change at the "
             "next login (kntc accounts reset-password USER -r WHY)")
    _said(_act(username, "reset_password", reason))


@app.command("reset-factor")
def reset_factor(username: User, reason: Reason) -> None:
    """Remove the second factor; the officer enrols again behind a new initial password (printed once)."""
    _said(_act(username, "reset_factor", reason))


@app.command("end-sessions")
def end_sessions(username: User, reason: Reason) -> None:
    """End every session of an account."""
    _said(_act(username, "end_sessions", reason))


@app.command()
def sessions(username: User) -> None:
    """An account's live sessions."""
    async def work(conn: Any) -> list[dict[str, Any]]:
        cur = await conn.execute(
            "SELECT encode(substr(s.token_hash, 1, 9), 'hex') AS handle, s.created_at, s.last_seen_at, s.expires_at, "
            "s.client, s.purpose FROM kntc.session s JOIN kntc.account a ON a.id = s.account_id "
            "WHERE a.username = %s AND s.expires_at > now() ORDER BY s.created_at DESC", (username.strip().lower(),))
        return await cur.fetchall()

    for s in _run(work):
        console.print(f"{s['handle']}  {s['purpose']:5}  from {s['client'] or '?'}  "
                      f"since {s['created_at']:%Y-%m-%d %H:%M}  last seen {s['last_seen_at']:%H:%M}  "
                      f"until {s['expires_at']:%H:%M}", highlight=False)


@app.command("list")
def list_accounts(
    unit: Annotated[str | None, typer.Option(help="a unit code: that unit and the units below it")] = None,
    q: Annotated[str | None, typer.Option(help="part of a username, name, e-mail or phone")] = None,
    stale_days: Annotated[int | None, typer.Option(help="no login for this many days")] = None,
    initial: Annotated[bool, typer.Option(help="still on the initial password")] = False,
    no_factor: Annotated[bool, typer.Option(help="required to hold a second factor and holding none")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1_000_000)] = 1000,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV on standard output")] = False,
) -> None:
    """The account directory, filtered; the reports of stale and initial-password accounts."""
    from core_app.repo.accounts import Directory
    from core_app.repo.accounts import list_accounts as directory

    async def work(conn: Any) -> list[dict[str, Any]]:
        got = await directory(conn, unit, limit, None, Directory(unit=unit, q=q, stale_days=stale_days,
                                                                 initial=initial, no_factor=no_factor),
                              officer=False)
        return got["data"]

    rows = _run(work)
    cols = ("username", "full_name", "unit", "roles", "clearance", "is_active", "last_login_at",
            "must_change_password", "factor_enrolled", "email", "phone")
    if csv_out:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([";".join(r[c]) if c == "roles" else r[c] for c in cols])
        return
    for r in rows:
        last = f"{r['last_login_at']:%Y-%m-%d}" if r["last_login_at"] else "never"
        console.print(f"{r['username']:32} {r['unit']:12} {','.join(r['roles']):28} c{r['clearance']} "
                      f"{'active' if r['is_active'] else 'DISABLED':8} last login {last}"
                      f"{'  INITIAL PASSWORD' if r['must_change_password'] else ''}"
                      f"{'  NO FACTOR' if r['factor_required'] and not r['factor_enrolled'] else ''}",
                      highlight=False, markup=False)
    console.print(f"{len(rows)} account(s)", highlight=False)


@app.command()
def reseal(reason: Reason) -> None:
    """Seal everything kept sealed again under the current KNTC_SECRET_KEY: a key rotation's last step.

    Second factors, webhook secrets, and the pending initial-password downloads and checked rosters;
    each opened with KNTC_SECRET_KEY or one of KNTC_PREVIOUS_SECRET_KEYS, in one transaction. When
    one opens with none of them, nothing changes and they are named (exit 1). Audited with the reason."""
    import json

    from core_app import resealing
    from core_app.cli.common import connect, load_settings
    from core_app.settings import OperatorSettings

    settings = load_settings(OperatorSettings)
    if not settings.secret_key:
        fail("KNTC_SECRET_KEY is not set: the key everything is sealed under from now on")
    if not 5 <= len(reason.strip()) <= 500:
        fail("give a reason of 5 to 500 characters (--reason)")
    with connect("owner") as conn:
        out = resealing.reseal(conn, settings.sealing_keys)
        if out.unreadable:
            conn.rollback()
            names = sorted(set(out.unreadable))
            fail(f"nothing changed: {len(names)} sealed value(s) open with neither KNTC_SECRET_KEY nor "
                 f"KNTC_PREVIOUS_SECRET_KEYS (is the old key among the previous ones?): "
                 + ", ".join(names[:10]) + (" …" if len(names) > 10 else "")
                 + "; a factor sealed under a key no one has any more: kntc accounts reset-factor USER")
        conn.execute("INSERT INTO kntc.access_log (kind, detail) VALUES ('factor_change', %s)",
                     (json.dumps({"action": "reseal", "resealed": out.resealed, "current": out.current,
                                  "reason": reason.strip(), "by": _operator()}),))
    what = ", ".join(f"{n} {label}" for label, n in out.resealed.items()) or "nothing"
    console.print(f"resealed {out.total_resealed} ({what}), already under the current key {out.current}",
                  highlight=False)
