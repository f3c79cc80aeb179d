"""A roster against the database: every row checked first, then all accounts created in one
transaction, or none. Importing the same file again finds every row already there and creates
nothing (a row without a username is the same person when the unit, name and contact match).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app import security
from core_app.roster.format import RawRow, fold
from core_app.roster.rows import Row, RowError, check, generated_username

# Called as progress(stage, done, total); stages: "check", "hash", "write".
Progress = Callable[[str, int, int], None]
HashMany = Callable[[list[str], Progress], Awaitable[list[str]]]


def hash_all(passwords: list[str]) -> list[str]:
    return [security.hash_initial_password(p) for p in passwords]


async def hash_in_thread(passwords: list[str], progress: Progress) -> list[str]:
    """Off the event loop: a few thousand hashes are seconds of CPU."""
    out = await asyncio.to_thread(hash_all, passwords)
    progress("hash", len(out), len(out))
    return out


@dataclass(frozen=True)
class Created:
    line: int
    username: str
    full_name: str
    unit_code: str
    initial_password: str | None  # None in a dry run


@dataclass
class Outcome:
    rows: int
    created: list[Created] = field(default_factory=list)
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class Importer:
    """On whose authority: the officer of the session (`kntc.may_grant`), an administrator named by
    account id (`kntc.may_grant_as`: the operator importing for them), or the operator alone."""

    admin_id: int | None = None
    session: bool = False
    label: str | None = None  # recorded in the access log


def _identity(unit: str, name: str, email: str | None, phone: str | None) -> tuple[str, str, str, str]:
    return unit, fold(name), email or "", phone or ""


async def _units(conn: AsyncConnection[Any], codes: list[str]) -> dict[str, int]:
    cur = await conn.execute("SELECT code, id FROM kntc.unit WHERE code = ANY(%s) AND valid_to IS NULL", (codes,))
    return {r["code"]: r["id"] for r in await cur.fetchall()}


async def _taken(conn: AsyncConnection[Any], names: list[str]) -> set[str]:
    cur = await conn.execute("SELECT t AS username FROM kntc.usernames_taken(%s) t", (names,))
    return {r["username"] for r in await cur.fetchall()}


async def _grants(conn: AsyncConnection[Any], importer: Importer, rows: list[Row], units: dict[str, int]) -> set[int]:
    """Lines whose roles or clearance the importer may not grant in that unit."""
    if importer.admin_id is None and not importer.session:
        return set()
    combos: dict[tuple[int, tuple[str, ...], int], list[int]] = {}
    for r in rows:
        combos.setdefault((units[r.unit_code], r.roles, r.clearance), []).append(r.line)
    items = [{"i": i, "unit": k[0], "roles": list(k[1]), "clearance": k[2]} for i, k in enumerate(combos)]
    test = ("kntc.may_grant_as(%(admin)s, (e->>'unit')::integer, ARRAY(SELECT jsonb_array_elements_text(e->'roles')), "
            "(e->>'clearance')::smallint)" if importer.admin_id is not None else
            "kntc.may_grant((e->>'unit')::integer, ARRAY(SELECT jsonb_array_elements_text(e->'roles')), "
            "(e->>'clearance')::smallint)")
    cur = await conn.execute(f"SELECT (e->>'i')::integer AS i FROM jsonb_array_elements(%(items)s) e WHERE NOT {test}",
                             {"items": Jsonb(items), "admin": importer.admin_id})
    keys = list(combos)
    return {line for r in await cur.fetchall() for line in combos[keys[r["i"]]]}


async def _existing(conn: AsyncConnection[Any], units: list[str], usernames: list[str]) -> list[dict[str, Any]]:
    """Accounts a row may already be: same username, or same unit (for rows without one). Under the
    application role, row-level security limits this to the administrator's area."""
    cur = await conn.execute(
        "SELECT a.username, u.code AS unit_code, a.full_name, a.roles, a.clearance, a.email, a.phone "
        "FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
        "WHERE a.username = ANY(%s) OR u.code = ANY(%s)", (usernames, units))
    return await cur.fetchall()


def _same(row: Row, acc: dict[str, Any]) -> bool:
    return (acc["unit_code"] == row.unit_code and fold(acc["full_name"]) == fold(row.full_name)
            and tuple(sorted(acc["roles"])) == tuple(sorted(row.roles)) and acc["clearance"] == row.clearance)


async def run(conn: AsyncConnection[Any], raw: Sequence[RawRow], importer: Importer, *, dry_run: bool = False,
              file_sha256: str = "", reason: str = "", hash_many: HashMany = hash_in_thread,
              progress: Progress = lambda *_: None) -> Outcome:
    """Check every row, then create every account in the caller's transaction (or nothing)."""
    out = Outcome(rows=len(raw), dry_run=dry_run)
    rows: list[Row] = []
    for i, r in enumerate(raw, 1):
        got = check(r)
        if isinstance(got, list):
            out.errors.extend(got)
        else:
            rows.append(got)
        if i % 5000 == 0 or i == len(raw):
            progress("check", i, len(raw))

    units = await _units(conn, sorted({r.unit_code for r in rows}))
    for r in rows:
        if r.unit_code not in units:
            out.errors.append(RowError(r.line, f"không có đơn vị hiện hành mã {r.unit_code}",
                                       f"no current unit with code {r.unit_code}"))
    rows = [r for r in rows if r.unit_code in units]
    refused = await _grants(conn, importer, rows, units)
    for r in rows:
        if r.line in refused:
            out.errors.append(RowError(
                r.line, f"bạn không được cấp vai trò {', '.join(r.roles)} với mức mật {r.clearance} ở {r.unit_code}",
                f"you may not grant {', '.join(r.roles)} with clearance {r.clearance} in {r.unit_code}"))
    rows = [r for r in rows if r.line not in refused]

    existing = await _existing(conn, sorted({r.unit_code for r in rows}), [r.username for r in rows if r.username])
    by_name = {a["username"]: a for a in existing}
    by_person: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for a in existing:
        by_person.setdefault(_identity(a["unit_code"], a["full_name"], a["email"], a["phone"]), a)
    seen_names: dict[str, int] = {}
    seen_people: dict[tuple[str, str, str, str], int] = {}
    new: list[Row] = []
    for r in rows:
        person = _identity(r.unit_code, r.full_name, r.email, r.phone)
        if r.username:
            if r.username in seen_names:
                first = seen_names[r.username]
                out.errors.append(RowError(r.line, f"tên đăng nhập {r.username} trùng với dòng {first}",
                                           f"username {r.username} repeats line {first}"))
                continue
            seen_names[r.username] = r.line
            acc = by_name.get(r.username)
            if acc is not None and _same(r, acc):
                out.unchanged.append((r.line, r.username))
                continue
            if acc is not None:
                out.errors.append(RowError(r.line, f"tên đăng nhập {r.username} đã có, với thông tin khác",
                                           f"username {r.username} exists with other details"))
                continue
        else:
            if person in seen_people:
                out.errors.append(RowError(r.line, f"cùng người với dòng {seen_people[person]} (cùng đơn vị, họ tên, "
                                           "liên hệ): hãy ghi tên đăng nhập cho từng người",
                                           f"the same person as line {seen_people[person]} (unit, name and contact): "
                                           "give each a username"))
                continue
            seen_people[person] = r.line
            acc = by_person.get(person)
            if acc is not None:
                if _same(r, acc):
                    out.unchanged.append((r.line, acc["username"]))
                else:
                    out.errors.append(RowError(r.line, f"người này đã có tài khoản {acc['username']} với vai trò hoặc "
                                               "mức mật khác", f"this person has account {acc['username']} already, "
                                               "with other roles or clearance"))
                continue
        new.append(r)

    # Usernames that exist outside the importer's sight are found here, not by a failed INSERT.
    given = [r for r in new if r.username]
    taken = await _taken(conn, [r.username for r in given if r.username]) if given else set()
    for r in given:
        if r.username in taken:
            out.errors.append(RowError(r.line, f"tên đăng nhập {r.username} đã có người dùng",
                                       f"username {r.username} is taken"))
    names = await _generate(conn, [r for r in new if not r.username], set(seen_names))
    out.errors.sort(key=lambda e: e.line)
    if out.errors:
        return out
    final = [(r, r.username or names[r.line]) for r in new]
    if dry_run:
        out.created = [Created(r.line, u, r.full_name, r.unit_code, None) for r, u in final]
        return out
    passwords = [security.new_initial_password() for _ in final]
    hashes = await hash_many(passwords, progress) if final else []
    progress("write", 0, len(final))
    if final:
        await conn.execute(
            "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, email, phone, "
            "must_change_password) "
            "SELECT x.username, x.full_name, x.unit_id, x.roles::text[], x.clearance, x.hash, x.email, x.phone, true "
            "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::smallint[], %s::text[], %s::text[], "
            "%s::text[]) AS x(username, full_name, unit_id, roles, clearance, hash, email, phone)",
            ([u for _, u in final], [r.full_name for r, _ in final], [units[r.unit_code] for r, _ in final],
             ["{" + ",".join(r.roles) + "}" for r, _ in final], [r.clearance for r, _ in final], hashes,
             [r.email for r, _ in final], [r.phone for r, _ in final]))
        await conn.execute("SELECT kntc.record_account_import(%s, %s, %s, %s)",
                           (len(final), file_sha256, reason, importer.label))
    progress("write", len(final), len(final))
    out.created = [Created(r.line, u, r.full_name, r.unit_code, p) for (r, u), p in zip(final, passwords, strict=True)]
    return out


async def _generate(conn: AsyncConnection[Any], rows: list[Row], reserved: set[str]) -> dict[int, str]:
    """A free username for each row (by line): namesakes in a unit get 2, 3, …"""
    names: dict[int, str] = {}
    n = {r.line: 1 for r in rows}
    todo = list(rows)
    used = set(reserved)
    for _ in range(20):
        if not todo:
            break
        proposal: dict[int, str] = {}
        for r in todo:
            while (u := generated_username(r.full_name, r.unit_code, n[r.line])) in used:
                n[r.line] += 1
            proposal[r.line] = u
            used.add(u)
        taken = await _taken(conn, list(proposal.values()))
        for r in todo:
            if proposal[r.line] not in taken:
                names[r.line] = proposal[r.line]
            else:
                n[r.line] += 1
        todo = [r for r in todo if r.line not in names]
    return names


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
