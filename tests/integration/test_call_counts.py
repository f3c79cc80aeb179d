"""The API calls an app process counts and adds to the shared counter in batches
(core_app/call_counts.py), on the real pool and database: a batch the database could not take is
kept and added once with the next, and a process that stops adds what it counted.

Threat rows (runbooks/security.md): T109.
"""

from __future__ import annotations

import asyncio
import secrets

import psycopg

from core_app.call_counts import CallCounts
from core_app.db import Database
from core_app.settings import Settings


def _settings(pg_env: dict[str, str]) -> Settings:
    # One connection, and a short wait for it: a pool that is busy is how a batch is refused here.
    return Settings(database_url=pg_env["KNTC_DATABASE_URL"], auth_database_url=pg_env["KNTC_AUTH_DATABASE_URL"],
                    secret_key=pg_env["KNTC_SECRET_KEY"], pool_min=1, pool_max=1,
                    pool_timeout_s=0.5)  # type: ignore[arg-type]


def _shared(owner_conn: psycopg.Connection, key: str) -> int:
    row = owner_conn.execute("SELECT hits FROM kntc.throttle WHERE purpose = 'api_session' AND key = %s",
                             (key,)).fetchone()
    return row["hits"] if row else 0


async def _refused_then_added(settings: Settings, key: str) -> tuple[int, int]:
    db = Database(settings)
    await db.open()
    counts = CallCounts("api_session")
    try:
        for _ in range(3):
            counts.add(key)
        async with db.connection():  # the pool's only connection is taken: the batch cannot leave
            await counts.flush(db)
            kept = counts.unsent(key)
        await counts.flush(db)
        return kept, counts.unsent(key)
    finally:
        await db.close()


def test_a_batch_the_database_could_not_take_is_kept_and_added_once_with_the_next(pg_env, owner_conn):
    key = f"batch-{secrets.token_hex(6)}"
    kept, left = asyncio.run(_refused_then_added(_settings(pg_env), key))
    assert kept == 3 and left == 0
    assert _shared(owner_conn, key) == 3


async def _stopped(settings: Settings, key: str) -> int:
    db = Database(settings)
    await db.open()
    counts = CallCounts("api_session")
    counts.start(db)
    try:
        counts.add(key)
        counts.add(key)
        await counts.stop(db)  # at once, before the next batch was due
        return counts.unsent(key)
    finally:
        await db.close()


def test_a_process_that_stops_adds_what_it_counted(pg_env, owner_conn):
    key = f"stop-{secrets.token_hex(6)}"
    assert asyncio.run(_stopped(_settings(pg_env), key)) == 0
    assert _shared(owner_conn, key) == 2
