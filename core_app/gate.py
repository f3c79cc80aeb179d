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
from typing import Any, Literal

from fastapi import Request
from psycopg import AsyncConnection

from core_app import throttle
from core_app.domain import workflow

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


@asynccontextmanager
async def acting(request: Request, *roles: str) -> AsyncIterator[tuple[AsyncConnection[Any], Actor]]:
    """The officer's transaction (row-level security applies) and who they are; `roles`: any one of them."""
    token = token_of(request)
    if not token:
        raise Refused("login_required")
    db = request.app.state.db
    budget = getattr(request.state, throttle.BUDGET_STATE, None)
    unsent = request.app.state.call_counts.unsent(budget.key) if budget else 0
    async with db.acting(token, request.app.state.settings.idle_seconds, budget, unsent) as (conn, row):
        if row is not None and row["allowed"] is not None:
            throttle.refuse_over(row)
        state = row["state"] if row else "expired"
        if state == "live" and row and row["account_id"] is not None:
            actor = Actor.from_row(row)
            request.state.actor = actor
            if roles:
                require(actor, *roles)
            yield conn, actor
            return
    if state == "setup":
        # An initial password or a factor to enrol: the session may only finish its setup.
        raise Refused("setup_required")
    if state == "idle":
        # Closed in a transaction of its own: the refusal must not roll the closing back.
        async with db.transaction() as conn:
            await conn.execute("SELECT kntc.session_close(%s)", (token,))
        raise Refused("idle")
    raise Refused("session_expired")
