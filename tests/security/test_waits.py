"""Bounded waits (threat model: any actor who can make the database wait: a forgotten transaction,
a long import, an officer holding a row, a compromised app host opening transactions and idling).

Every connection of the application bounds its statements, its lock waits and its idle
transactions; a request that meets a held lock answers with a clear error instead of hanging; and
no single lock serialises audited writes across the country.

Threat rows (runbooks/security.md): T30, T31, T32.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from core_app.db import Database
from core_app.settings import Settings
from tests.conftest import petition_body


def _settings(pg_env: dict[str, str], **over: object) -> Settings:
    return Settings(database_url=pg_env["KNTC_DATABASE_URL"], auth_database_url=pg_env["KNTC_AUTH_DATABASE_URL"],
                    secret_key=pg_env["KNTC_SECRET_KEY"], pool_min=1, pool_max=2, **over)  # type: ignore[arg-type]


async def _on_the_app_pool(settings: Settings, idle_s: float) -> tuple[dict, BaseException | None]:
    db = Database(settings)
    await db.open()
    try:
        async with db.connection() as conn:
            limits = {}
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
                limits[name] = (await (await conn.execute(f"SHOW {name}")).fetchone())[name]
            await conn.execute("SELECT 1")  # a transaction is open now, and the request "forgets" it
            await asyncio.sleep(idle_s)
            try:
                await conn.execute("SELECT 1")
            except psycopg.Error as exc:
                return limits, exc
            await conn.rollback()
            return limits, None
    finally:
        await db.close()


def test_a_transaction_the_application_leaves_open_is_cut(pg_env):
    limits, _ = asyncio.run(_on_the_app_pool(_settings(pg_env), 0))
    assert limits == {"statement_timeout": "15s", "lock_timeout": "5s", "idle_in_transaction_session_timeout": "30s"}
    # The same pool with the idle limit at one second, so that the test does not wait thirty.
    _, error = asyncio.run(_on_the_app_pool(_settings(pg_env, idle_in_transaction_timeout_ms=1000), 2.5))
    assert isinstance(error, psycopg.errors.IdleInTransactionSessionTimeout), error
    # A session that sets nothing (psql by hand as any role) still has the database's own bounds.
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as bare:
        assert bare.execute("SHOW idle_in_transaction_session_timeout").fetchone() == {
            "idle_in_transaction_session_timeout": "10min"}
        assert bare.execute("SHOW lock_timeout").fetchone() == {"lock_timeout": "1min"}


def test_a_request_blocked_by_a_held_lock_gets_a_clear_error_not_an_endless_wait(officer, pg_env):
    clerk = officer("X00004", ["reception", "handling"])
    made = clerk.post("/api/cases", json=petition_body()).json()
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], row_factory=dict_row) as holder:
        # An import, a stuck session, or someone's psql: the case row is locked and stays so.
        holder.execute("SELECT 1 FROM kntc.case_file WHERE id = %s FOR UPDATE", (made["id"],))
        started = time.monotonic()
        try:
            r = clerk.client.patch(f"/api/cases/{made['code']}", timeout=httpx.Timeout(25),
                                   json={"version": made["version"], "subject": "Khiếu nại (bổ sung)",
                                         "reason": "Bổ sung theo đơn"})
        finally:
            holder.rollback()
        waited = time.monotonic() - started
    assert r.status_code == 409 and r.json()["error"] == "retry", r.text
    assert "thử lại" in r.json()["message"] and "try again" in r.json()["message_en"]
    assert waited < 12, f"the request waited {waited:.1f} s"


def test_two_writers_in_different_units_do_not_wait_on_each_other(pg_env, owner_conn, make_account):
    # Two neighbouring communes: two units whose officers have nothing to wait for each other about.
    pair = owner_conn.execute(
        "SELECT a.code AS a, b.code AS b FROM kntc.unit a JOIN kntc.unit b ON b.id = a.id + 4 "
        "WHERE a.code ~ '^X[0-9]+$' AND b.code ~ '^X[0-9]+$' AND a.valid_to IS NULL AND b.valid_to IS NULL "
        "ORDER BY a.id OFFSET 321 LIMIT 1").fetchone()
    first, second = make_account(pair["a"], ["reception"]), make_account(pair["b"], ["reception"])
    rename = "UPDATE kntc.account SET full_name = full_name || ' (đổi)' WHERE username = %s"
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"]) as one, \
            psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], options="-c lock_timeout=3000") as other:
        one.execute(rename, (first,))  # an audited write, its transaction still open
        started = time.monotonic()
        try:
            other.execute(rename, (second,))
            other.commit()
        except psycopg.errors.LockNotAvailable:
            pytest.fail("a write in one unit waited for an open transaction of another unit")
        finally:
            one.rollback()
        assert time.monotonic() - started < 2
