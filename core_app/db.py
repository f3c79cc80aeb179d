"""Connections for the request path: one pool, and a transaction that carries the actor.

Every request that acts for an officer runs in one transaction whose first statement hands
the officer's session token to PostgreSQL (`kntc.session_token`), so row-level security sees
the same person the API does, and nothing at all without a live session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from core_app.settings import Settings

# set_config and the actor lookup in one round trip.
BEGIN_AS_ACTOR = """
SELECT (a).account_id, (a).unit_id, (a).roles, (a).clearance, u.code AS unit_code, u.name AS unit_name,
       u.level AS unit_level
  FROM (SELECT set_config('kntc.session_token', %s, true)) s,
       LATERAL (SELECT kntc.actor() AS a WHERE s.set_config IS NOT NULL) x
  JOIN kntc.unit u ON u.id = (x.a).unit_id
"""


class Database:
    def __init__(self, settings: Settings) -> None:
        self.pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs={"row_factory": dict_row, "prepare_threshold": 0, "autocommit": False},
            open=False,
            timeout=10,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection[Any]]:
        async with self.pool.connection() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def acting(self, token: str) -> AsyncIterator[tuple[AsyncConnection[Any], dict[str, Any] | None]]:
        """A transaction in which the database knows the officer; yields (conn, actor or None).

        The request runs in pipeline mode: BEGIN travels with the actor lookup, and statements
        whose results nobody reads (an event row, a deadline) travel with the next read or with
        COMMIT, so a request costs one round trip per result it needs, not one per statement.
        An error still surfaces inside this block, at the next read or at COMMIT.
        """
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            cur = await conn.execute(BEGIN_AS_ACTOR, (token,))
            yield conn, await cur.fetchone()
