"""The one gate: who is acting, for the API and the web pages alike.

From a request (a Bearer token or the session cookie) it opens the officer's transaction, applies
the idle limit (kept in the database, so every worker and host agrees), and yields a typed `Actor`.
What it refuses it refuses with one `Refused` reason; the API answers it as JSON 401/403 and the
pages as a redirect to login or a 403 page (see `core_app.app`), from the same decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from fastapi import Request
from psycopg import AsyncConnection

from core_app import throttle
from core_app.domain import workflow
from core_app.repo.planned import OfficerRead

SESSION_COOKIE = "kntc_session"

Reason = Literal["login_required", "session_expired", "idle", "role_not_allowed", "setup_required"]


@dataclass(frozen=True)
class Actor(workflow.Actor):
    """The officer acting; the database's row-level security knows the same person."""

    unit_code: str
    unit_name: str
    unit_level: str

    def has_any(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def is_external_reader(self) -> bool:
        return "external_reader" in self.roles

    def as_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "unit_id": self.unit_id, "roles": sorted(self.roles),
                "clearance": self.clearance, "unit_code": self.unit_code, "unit_name": self.unit_name,
                "unit_level": self.unit_level}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Actor:
        return cls(account_id=row["account_id"], unit_id=row["unit_id"], roles=frozenset(row["roles"]),
                   clearance=row["clearance"], unit_code=row.get("unit_code") or "",
                   unit_name=row.get("unit_name") or "", unit_level=row.get("unit_level") or "")


class Refused(Exception):
    """Nobody may act (401) or this officer may not (403)."""

    def __init__(self, reason: Reason, roles: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.roles = reason, roles

    @property
    def status(self) -> int:
        return 403 if self.reason in ("role_not_allowed", "setup_required") else 401


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE) or None


def require(actor: Actor, *roles: str) -> None:
    if not actor.has_any(*roles):
        raise Refused("role_not_allowed", roles)


def _budget(request: Request) -> tuple[throttle.Budget | None, int]:
    """The call's API budget (set by core_app.api.throttling) and the calls this process counted
    against it and has not added to the shared counter yet."""
    budget = getattr(request.state, throttle.BUDGET_STATE, None)
    return budget, request.app.state.call_counts.unsent(budget.key) if budget else 0


def _actor_of(request: Request, row: dict[str, Any] | None, roles: tuple[str, ...]) -> Actor | None:
    """The officer of the session statement's row, or None when the session may not act; a call over
    its budget is refused here, whatever the session's state."""
    if row is not None and row["allowed"] is not None:
        throttle.refuse_over(row)
    if row is None or row["state"] != "live" or row["account_id"] is None:
        return None
    actor = Actor.from_row(row)
    request.state.actor = actor
    if roles:
        require(actor, *roles)
    return actor


async def _refuse(request: Request, token: str, row: dict[str, Any] | None) -> NoReturn:
    state = row["state"] if row else "expired"
    if state == "setup":
        # An initial password or a factor to enrol: the session may only finish its setup.
        raise Refused("setup_required")
    if state == "idle":
        # Closed in a transaction of its own: the refusal must not roll the closing back.
        async with request.app.state.db.transaction() as conn:
            await conn.execute("SELECT kntc.session_close(%s)", (token,))
        raise Refused("idle")
    raise Refused("session_expired")


@asynccontextmanager
async def acting(request: Request, *roles: str) -> AsyncIterator[tuple[AsyncConnection[Any], Actor]]:
    """The officer's transaction (row-level security applies) and who they are; `roles`: any one of them."""
    token = token_of(request)
    if not token:
        raise Refused("login_required")
    budget, unsent = _budget(request)
    async with request.app.state.db.acting(token, request.app.state.settings.idle_seconds, budget,
                                           unsent) as (conn, row):
        actor = _actor_of(request, row, roles)
        if actor is not None:
            yield conn, actor
            return
    await _refuse(request, token, row)


async def reading(request: Request, read: OfficerRead, params: dict[str, Any], *roles: str
                  ) -> tuple[list[dict[str, Any]], Actor]:
    """The rows `read` found for the officer (the statement's columns), and who they are: the same
    judgement as `acting`, made in one call with the read (core_app/repo/planned.py, OfficerRead),
    for reads that write nothing."""
    token = token_of(request)
    if not token:
        raise Refused("login_required")
    budget, unsent = _budget(request)
    rows = await request.app.state.db.read_as_officer(read, token, request.app.state.settings.idle_seconds,
                                                      budget, unsent, params)
    head = rows[0] if rows else None
    actor = _actor_of(request, head, roles)
    if actor is None:
        await _refuse(request, token, head)
    columns = [c for c, _ in read.statement.returns]
    return [{c: r[c] for c in columns} for r in rows if r["found"]], actor
