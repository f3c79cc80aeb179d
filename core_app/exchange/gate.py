"""Who is calling the exchange API: a connected system's token, checked with its certificate.

Every request opens one transaction in which PostgreSQL knows the token and the certificate the
TLS terminator saw (`kntc.exchange_token`, `kntc.exchange_cert`); `kntc.actor()` then returns the
client's account, so row-level security applies as for an officer of the client's unit. The
token, its credential and its client are looked up on every request: a revocation stops the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from core_app import throttle
from core_app.exchange import certs, refusals
from core_app.exchange.problems import Problem
from core_app.gate import Actor

SETTINGS = "SELECT set_config('kntc.exchange_token', %(token)s, true), set_config('kntc.exchange_cert', %(cert)s, true)"
CHECK = "SELECT * FROM kntc.exchange_begin(%(token)s, %(cert)s)"
ACTOR = "SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance FROM (SELECT kntc.actor() AS a) x"

REALM = 'Bearer realm="kntc-exchange"'


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    scopes: frozenset[str]
    rate_per_minute: int
    unit_id: int
    unit_code: str
    account_id: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Client:
        """From a row of kntc.exchange_begin (the token's client as the database sees it now)."""
        return cls(row["client_id"], row["client_name"], frozenset(row["scopes"]), row["rate_per_minute"],
                   row["unit_id"], row["unit_code"], row["account_id"])


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


def _refuse(status: int, error: str, detail: str) -> Problem:
    # RFC 6750 section 3: the challenge names the error; RFC 9457 carries the rest.
    return Problem(status, error, detail, headers={"WWW-Authenticate": f'{REALM}, error="{error}"'})


def _refused_known(request: Request, client: Client, reason: str) -> None:
    """A client's own token refused at the gate: recorded with the refusals, under its name."""
    setattr(request.state, refusals.REASON, reason)
    setattr(request.state, refusals.ASKED, client.name)


async def _count_failure(request: Request, reason: str) -> None:
    # Why, for the record of refusals at the gate (core_app.exchange.refusals).
    setattr(request.state, refusals.REASON, reason)
    async with request.app.state.db.transaction() as conn:
        row = await throttle.hit(conn, "api_address", throttle.client_address(request))
    if not row["allowed"]:
        setattr(request.state, refusals.REASON, "too_many_refusals")
        raise Problem(
            429,
            "too_many_requests",
            "too many refused requests from this address",
            headers={"Retry-After": str(max(1, row["retry_after_s"]))},
        )


@asynccontextmanager
async def acting(request: Request, scope: str) -> AsyncIterator[tuple[AsyncConnection[Any], Client, Actor]]:
    """The client's transaction, the client and the account it acts as; `scope`: the one it needs."""
    token = bearer(request)
    if not token or len(token) > 200:
        await _count_failure(request, "no_token")
        raise _refuse(401, "invalid_token", "an access token is required (POST /api/v1/oauth/token)")
    cert = certs.presented(request) or ""
    db = request.app.state.db
    # The rate is counted in a transaction of its own: a row lock held on the counter until the
    # request commits would make one client's requests wait on each other.
    async with db.transaction() as conn:
        cur = await conn.execute(CHECK, {"token": token, "cert": cert})
        row = await cur.fetchone()
        state = row["state"] if row else "invalid"
        if state == "live" and row:
            client = Client.from_row(row)
            if scope not in client.scopes:
                _refused_known(request, client, "insufficient_scope")
                raise _refuse(403, "insufficient_scope", f"this token does not carry the scope {scope!r}")
            hit = await throttle.hit(conn, "exchange_minute", str(client.id))
    if state == "live":
        if hit["hits"] > client.rate_per_minute:
            _refused_known(request, client, "over_rate")
            raise Problem(
                429,
                "too_many_requests",
                f"more than {client.rate_per_minute} requests a minute",
                headers={"Retry-After": str(max(1, int(hit["retry_after_s"] or 60)))},
            )
        async with db.connection() as conn, conn.transaction():
            await conn.execute(SETTINGS, {"token": token, "cert": cert})
            cur = await conn.execute(ACTOR)
            row = await cur.fetchone()
            # kntc.actor() checks the token, certificate, credential and client again, in this transaction.
            if row and row["account_id"] is not None:
                actor = Actor(
                    account_id=row["account_id"],
                    unit_id=row["unit_id"],
                    roles=frozenset(row["roles"]),
                    clearance=row["clearance"],
                    unit_code=client.unit_code,
                    unit_name="",
                    unit_level="",
                )
                request.state.exchange_client = client
                yield conn, client, actor
                return
        state = "invalid"
    await _count_failure(request, "wrong_certificate" if state == "wrong_certificate" else "invalid_token")
    if state == "wrong_certificate":
        raise _refuse(401, "invalid_token", "this token is bound to another certificate than the one presented")
    raise _refuse(401, "invalid_token", "the access token is unknown, expired or revoked")
