"""Connections for the request path: one pool, and a transaction that carries the actor.

Every request that acts for an officer runs in one transaction whose first statement hands
the officer's session token to PostgreSQL (`kntc.session_token`), so row-level security sees
the same person the API does, and nothing at all without a live session. The same statement counts
an API call against its session's budget: one transaction per request, not one for the budget and
one for the work.

Logging in goes through a second, small pool of the login role (kntc_auth), the only role that may
open a session. Every connection, of either pool and of the operator commands, bounds its waits:
a statement, a lock and a transaction left idle each have a timeout, so a stuck import or a
forgotten transaction yields a clear error instead of requests that hang.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from core_app.repo.planned import Planned
from core_app.settings import Settings
from core_app.throttle import Budget
from core_app.waits import app_connection, check_waits

# The session's judgement (live, idle, expired, setup), the officer and the call's API budget in one
# round trip. kntc.session_resume() finds the session, its account and units in one lookup and, only
# for a live session, seals the officer into the transaction's actor cache, so each row-level-security
# check of the request reads the cache (migration 0027). OFFSET 0 keeps the subqueries whole.
# The budget is judged by the shared counter plus the calls this process counted and has not added
# yet (`more`, core_app/call_counts.py): a read, so that reading a case takes no transaction id.
# Every request runs it: planned once per server connection (core_app/repo/planned.py).
_SESSION = """
SELECT s.state, (s.who).account_id, (s.who).unit_id, (s.who).roles, (s.who).clearance, u.code AS unit_code,
       u.name AS unit_name, u.level AS unit_level, {budget}
  FROM (SELECT r.state, r.who FROM kntc.session_resume(%(token)s, %(idle)s) r OFFSET 0) s
  LEFT JOIN kntc.unit u ON u.id = (s.who).unit_id
{join}"""
_SESSION_COLUMNS = (("state", "text"), ("account_id", "integer"), ("unit_id", "integer"), ("roles", "text[]"),
                    ("clearance", "smallint"), ("unit_code", "text"), ("unit_name", "text"),
                    ("unit_level", "text"), ("allowed", "boolean"), ("retry_after_s", "integer"))
# An API call, judged against its budget. The filter on the purpose stays: during a rolling release a
# host not yet upgraded calls this function for its pages too, without a purpose.
BEGIN_AS_ACTOR = Planned(
    "begin_as_actor",
    params=(("token", "text"), ("idle", "integer"), ("purpose", "text"), ("key", "text"), ("more", "integer")),
    returns=_SESSION_COLUMNS,
    volatility="VOLATILE",
    sql=_SESSION.format(budget="b.allowed, b.retry_after_s", join="""\
  LEFT JOIN LATERAL (SELECT h.allowed, h.retry_after_s FROM kntc.throttle_allows(%(purpose)s, %(key)s, %(more)s) h
                      WHERE %(purpose)s::text IS NOT NULL OFFSET 0) b ON true
"""))
# A request without an API budget (the pages). A statement of its own: in the one above, a call without
# a purpose was planned again at every call (PL/pgSQL's kept plan, judged for the calls with one,
# cost more than a plan for a null purpose), 80 µs of the database's CPU per page.
BEGIN_WITHOUT_BUDGET = Planned(
    "begin_without_budget",
    params=(("token", "text"), ("idle", "integer")),
    returns=_SESSION_COLUMNS,
    volatility="VOLATILE",
    sql=_SESSION.format(budget="NULL::boolean AS allowed, NULL::integer AS retry_after_s", join=""))


def session_statement(token: str, idle_seconds: int, budget: Budget | None, unsent: int = 0,
                      ) -> tuple[str, dict[str, Any]]:
    """The first statement of an officer's transaction and its parameters: with the API call's budget
    when there is one, else the statement of its own for requests without (the pages)."""
    if budget is None:
        return BEGIN_WITHOUT_BUDGET.call, {"token": token, "idle": idle_seconds}
    return BEGIN_AS_ACTOR.call, {"token": token, "idle": idle_seconds, "purpose": budget.purpose,
                                 "key": budget.key, "more": unsent}


# After a failover HAProxy closes every session (on-marked-down shutdown-sessions); a pooled
# connection learns it only when used, and the request would fail with 503. Checking every
# checkout costs a round trip per request, so only connections that sat idle are checked:
# under load connections are reused within milliseconds and never pay for it.
IDLE_CHECK_SECONDS = 1.0
# The pool's own `check=` retries a failed checkout with a backoff (1 s, 2 s, …), one stale
# connection per round: after a failover with a dozen idle connections that is a 10 s PoolTimeout.
# One broken connection means the server closed them all, so the rest are checked at once.
CHECKOUT_ATTEMPTS = 3


async def _mark_returned(conn: AsyncConnection[Any]) -> None:
    conn._kntc_returned = time.monotonic()  # type: ignore[attr-defined]


async def without_pipelines(conn: AsyncConnection[Any]) -> None:
    """Mark a connection to send each statement on its own (behind PgBouncer: see `pipeline`)."""
    conn._kntc_no_pipeline = True  # type: ignore[attr-defined]


def pipeline(conn: AsyncConnection[Any]) -> AbstractAsyncContextManager[Any]:
    """Pipeline mode (the statements of a block in one round trip), except through PgBouncer:
    before 1.21 it loses track of a client that has several Syncs in flight,
    and hands the server connection on while that client still waits for an answer, which then
    never comes (measured here: requests hung until the 20 s query_wait_timeout). Through it each
    statement is its own round trip; the transaction is the same."""
    return nullcontext() if getattr(conn, "_kntc_no_pipeline", False) else conn.pipeline()


@asynccontextmanager
async def _checked(pool: AsyncConnectionPool) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection of `pool` known to be alive if it sat idle (see IDLE_CHECK_SECONDS); the login
    pool sits idle most of all, so after a failover its first login would otherwise fail."""
    conn = await pool.getconn()
    for _ in range(CHECKOUT_ATTEMPTS):
        if time.monotonic() - getattr(conn, "_kntc_returned", 0.0) <= IDLE_CHECK_SECONDS:
            break
        try:
            await AsyncConnectionPool.check_connection(conn)
            break
        except psycopg.Error:
            await pool.putconn(conn)  # broken: the pool discards it and opens another
            await pool.check()
            conn = await pool.getconn()
    try:
        yield conn
    finally:
        await pool.putconn(conn)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        kwargs = {"row_factory": dict_row, "autocommit": False, **app_connection(settings)}
        configure = without_pipelines if settings.database_pooler == "pgbouncer" else None
        self.pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs=kwargs,
            configure=configure,
            open=False,
            timeout=settings.pool_timeout_s,
            reset=_mark_returned,
        )
        self.auth_pool = AsyncConnectionPool(
            settings.auth_database_url,
            min_size=1,
            max_size=4,
            kwargs=kwargs,
            configure=configure,
            open=False,
            timeout=settings.pool_timeout_s,
            reset=_mark_returned,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        await self.auth_pool.open(wait=True, timeout=30)
        if self.settings.database_pooler == "pgbouncer":
            for pool in (self.pool, self.auth_pool):
                async with pool.connection() as conn:
                    await check_waits(conn, self.settings)
                    await conn.rollback()

    async def close(self) -> None:
        await self.auth_pool.close()
        await self.pool.close()

    @asynccontextmanager
    async def auth_transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A transaction as the login role: checking a password, opening a session."""
        async with _checked(self.auth_pool) as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection known to be alive if it sat idle (see IDLE_CHECK_SECONDS)."""
        async with _checked(self.pool) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def counting(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A short write transaction for a counter whose last hits a crash may lose (the API budget),
        in one round trip: BEGIN, the statements and COMMIT go out together when the block ends, and
        COMMIT does not wait for the WAL to reach the disk. Read the cursors after the block."""
        async with self.connection() as conn, pipeline(conn), conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            yield conn

    @asynccontextmanager
    async def acting(self, token: str, idle_seconds: int, budget: Budget | None = None, unsent: int = 0,
                     ) -> AsyncIterator[tuple[AsyncConnection[Any], dict[str, Any] | None]]:
        """A transaction in which the database knows the officer; yields (conn, the session's row).

        The row's `state` is 'live', 'idle' or 'expired'; its actor columns are set only when live.
        Use it through `core_app.gate.acting`, which turns the row into an Actor or a refusal.
        With an API `budget`, the first statement also judges the call (the row's `allowed`,
        `retry_after_s`) by the shared counter plus the `unsent` calls this process counted
        (core_app/call_counts.py), this one among them.

        The request runs in pipeline mode (not through PgBouncer: see `pipeline`): BEGIN travels
        with the actor lookup, and statements whose results nobody reads (an event row, a
        deadline) travel with the next read or with COMMIT, so a request costs one round trip per
        result it needs, not one per statement. An error still surfaces inside this block, at the
        next read or at COMMIT.
        """
        statement, params = session_statement(token, idle_seconds, budget, unsent)
        async with self.connection() as conn, pipeline(conn), conn.transaction():
            cur = await conn.execute(statement, params)
            row = await cur.fetchone()
            yield conn, row
