"""The deadline rules as versioned data, and the rulebook each application host keeps of them.

A step uses the rule version in force on the day it starts (`kntc.deadline_rule_version`). Hosts
cache the rulebook, but never past a change: every request that needs it first reads
`kntc.rulebook_stamp`, which each rule edit and each calendar change bumps in its own transaction,
and reloads when the stamp moved. An edit is therefore seen by every worker of every host on its
next request, without a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.domain.deadlines import Calendar, Rule

VERSIONS = """
SELECT v.code, r.case_kind, r.step, r.complaint_round, v.version, v.effective_from, v.days, v.day_unit,
       v.complex_days, v.remote_days, v.remote_complex_days, v.extension_days, v.max_extensions,
       v.extension_levels, v.start_event, v.end_events, v.legal_basis, v.description_vi, v.description_en
  FROM kntc.deadline_rule_version v JOIN kntc.deadline_rule r ON r.code = v.code
 ORDER BY v.code, v.effective_from, v.version
"""

STAMP = "SELECT stamp FROM kntc.rulebook_stamp"


def _rule(r: dict[str, Any]) -> Rule:
    return Rule(r["code"], r["step"], r["days"], r["day_unit"], r["complex_days"], r["remote_days"],
                r["remote_complex_days"], r["extension_days"], r["max_extensions"], r["start_event"],
                r["legal_basis"], tuple(r["end_events"]),
                tuple(r["extension_levels"]) if r["extension_levels"] else None, r["version"],
                r["effective_from"], r["case_kind"], r["complaint_round"], r["description_vi"],
                r["description_en"])


@dataclass
class RuleBook:
    """Every version of every rule, and the calendar overrides, as of one stamp."""

    versions: dict[str, list[Rule]]  # code -> versions, oldest effective first
    calendar: Calendar
    stamp: int = 0
    by_key: dict[tuple[str, str, int | None], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for code, vs in self.versions.items():
            r = vs[-1]
            self.by_key[(r.case_kind, r.step, r.complaint_round)] = code

    def version_on(self, code: str, on: date) -> Rule | None:
        """The version in force on `on`: the latest effective by then (the same day: the latest edit);
        a step older than the first version is counted by the first."""
        vs = self.versions.get(code)
        if not vs:
            return None
        chosen = vs[0]
        for v in vs:
            if v.effective_from <= on:
                chosen = v
        return chosen

    def version(self, code: str, version: int | None) -> Rule | None:
        vs = self.versions.get(code) or []
        return next((v for v in vs if v.version == version), vs[-1] if vs else None)

    def find(self, kind: str, step: str, complaint_round: int, on: date | None = None) -> Rule | None:
        for key in ((kind, step, complaint_round), (kind, step, None), ("any", step, None)):
            code = self.by_key.get(key)
            if code:
                return self.version_on(code, on or date.today())
        return None

    def starting(self, kind: str, complaint_round: int, event: str, on: date) -> list[Rule]:
        """The rules of this kind and round that an event starts (one per step)."""
        steps = {v[-1].step for v in self.versions.values() if v[-1].start_event == event}
        found = [self.find(kind, s, complaint_round, on) for s in sorted(steps)]
        return [r for r in found if r is not None and r.start_event == event]


async def load_rulebook(conn: AsyncConnection[Any]) -> RuleBook:
    stamp = await (await conn.execute(STAMP)).fetchone()
    cur = await conn.execute(VERSIONS)
    versions: dict[str, list[Rule]] = {}
    for r in await cur.fetchall():
        versions.setdefault(r["code"], []).append(_rule(r))
    cur = await conn.execute("SELECT day, is_working FROM kntc.calendar_override")
    overrides = {r["day"]: r["is_working"] for r in await cur.fetchall()}
    return RuleBook(versions, Calendar(overrides), stamp["stamp"] if stamp else 0)


def load_rulebook_sync(conn: psycopg.Connection[Any]) -> RuleBook:
    """The same rulebook over a sync connection with dict rows (bulk generators, commands)."""
    stamp = conn.execute(STAMP).fetchone()
    versions: dict[str, list[Rule]] = {}
    for r in conn.execute(VERSIONS).fetchall():
        versions.setdefault(r["code"], []).append(_rule(r))
    overrides = {r["day"]: r["is_working"] for r in conn.execute("SELECT day, is_working FROM kntc.calendar_override")}
    return RuleBook(versions, Calendar(overrides), stamp["stamp"] if stamp else 0)


class RulebookCache:
    """One per application process; valid only while the database's stamp is the one it was read at."""

    def __init__(self) -> None:
        self._book: RuleBook | None = None
        self._lock = asyncio.Lock()

    async def current(self, conn: AsyncConnection[Any]) -> RuleBook:
        stamp = await (await conn.execute(STAMP)).fetchone()
        now = stamp["stamp"] if stamp else 0
        book = self._book
        if book is not None and book.stamp == now:
            return book
        async with self._lock:
            if self._book is None or self._book.stamp != now:
                self._book = await load_rulebook(conn)
            return self._book


class RuleRefused(Exception):
    def __init__(self, status: int, vi: str, en: str) -> None:
        super().__init__(en)
        self.status, self.vi, self.en = status, vi, en


EDITABLE = ("days", "day_unit", "complex_days", "remote_days", "remote_complex_days", "extension_days",
            "max_extensions", "extension_levels", "start_event", "end_events", "legal_basis", "description_vi",
            "description_en")


async def edit(conn: AsyncConnection[Any], code: str, effective_from: date, changes: dict[str, Any],
               reason: str) -> int:
    """A new version of rule `code` (kntc.deadline_rule_edit decides who may, and checks the values)."""
    rule = {k: v for k, v in changes.items() if k in EDITABLE and v is not None}
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT kntc.deadline_rule_edit(%s, %s, %s, %s) AS version",
                                     (code, effective_from, Jsonb(rule), reason))
            row = await cur.fetchone()
    except psycopg.errors.InsufficientPrivilege:
        raise RuleRefused(403, "Chỉ quản trị hệ thống cấp trung ương được sửa quy định thời hạn.",
                          "only a central system administrator may edit a deadline rule") from None
    except (psycopg.errors.CheckViolation, psycopg.errors.InvalidParameterValue) as exc:
        msg = exc.diag.message_primary or ""
        vi, _, en = msg.partition(" / ")
        raise RuleRefused(400, vi or "Giá trị không hợp lệ.", en or msg or "invalid value") from None
    if row is None or row["version"] is None:
        raise RuleRefused(404, "Không có quy định thời hạn này.", f"no deadline rule {code!r}")
    return int(row["version"])


# The fields a version carries; the listing shows those of the version in force.
_VERSIONED = ("version", "effective_from", "days", "day_unit", "complex_days", "remote_days", "remote_complex_days",
              "extension_days", "max_extensions", "extension_levels", "start_event", "end_events", "legal_basis",
              "description_vi", "description_en")


async def list_rules(conn: AsyncConnection[Any], on: date) -> list[dict[str, Any]]:
    """Each rule as in force on `on` (the service's day in Vietnam, as the steps are counted), with
    its history of versions."""
    # The rules are public law: listed without a session; the editor is named by account id (the
    # account itself is readable only within its area).
    cur = await conn.execute(
        "SELECT r.*, coalesce((SELECT jsonb_agg(to_jsonb(v) ORDER BY v.version) FROM kntc.deadline_rule_version v "
        "WHERE v.code = r.code), '[]') AS versions "
        "FROM kntc.deadline_rule r ORDER BY r.case_kind, r.step, r.complaint_round")
    listed = await cur.fetchall()
    for rule in listed:
        # The stored row follows an edit only when it takes effect the day it is made (by the
        # database's clock); a version dated later comes into force with no write at all.
        in_force = [v for v in rule["versions"] if date.fromisoformat(v["effective_from"]) <= on]
        if in_force:
            latest = max(in_force, key=lambda v: (v["effective_from"], v["version"]))
            rule.update({k: latest[k] for k in _VERSIONED if k in latest})
            rule["effective_from"] = date.fromisoformat(latest["effective_from"])
    return listed
