"""SQL for citizens' notifications (one place for it): what officers see of them, and the worker's and
the gateway's doors into the outbox (migration 0013).

The outbox is filled by the database itself (`kntc.notify_capture`, a trigger on the timeline), in
the transaction of the change; nothing here inserts into it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection

from core_app.security import normalise_lookup_secret

# Under row-level security: a case the officer may not read has no rows here, and a protected party
# the officer does not handle joins as NULL (shown "protected").
OF_CASE = """
SELECT n.id, n.channel, n.event, n.status, n.attempts, n.created_at, n.last_attempt_at, n.sent_at,
       n.reported_at, CASE WHEN n.status = 'queued' THEN n.next_at END AS next_at, n.last_error,
       p.role AS party_role, p.full_name AS party_name
  FROM kntc.notification n LEFT JOIN kntc.party p ON p.id = n.party_id
 WHERE n.case_id = %s
 ORDER BY n.created_at, n.event, n.channel, n.id
"""


async def of_case(conn: AsyncConnection[Any], case_id: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(OF_CASE, (case_id,))
    return await cur.fetchall()


# -- the worker (login role, autocommit: each call is its own transaction) -----------------------

async def claim(conn: AsyncConnection[Any], limit: int, lease_s: int, channels: list[str]) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM kntc.notify_claim(%s, %s, %s)", (limit, lease_s, channels))
    return await cur.fetchall()


async def done(conn: AsyncConnection[Any], row: dict[str, Any], outcome: str, *, provider_id: str | None = None,
               sent_to: str | None = None, body: str | None = None, error: str | None = None,
               retry_after_s: int | None = None, max_attempts: int = 10) -> str | None:
    """Record one attempt's outcome; the status after it (None: the row was no longer this attempt's)."""
    cur = await conn.execute(
        "SELECT kntc.notify_done(%s, %s, %s, %s, %s, %s, %s, %s, %s) AS status",
        (row["id"], row["attempts"], outcome, provider_id, sent_to, body, error, retry_after_s, max_attempts))
    got = await cur.fetchone()
    return got["status"] if got else None


# -- the gateway's callbacks (application role) -----------------------------------------------

async def first_callback(conn: AsyncConnection[Any], callback_id: str) -> bool:
    """True the first time a callback id is seen (within the hour the ids are kept)."""
    cur = await conn.execute("SELECT kntc.sms_callback_first(%s) AS first", (callback_id,))
    got = await cur.fetchone()
    return bool(got and got["first"])


async def report(conn: AsyncConnection[Any], notification_id: str, provider_id: str, delivered: bool,
                 error: str | None) -> bool:
    cur = await conn.execute("SELECT kntc.notify_report(%s, %s, %s, %s) AS known",
                             (notification_id, provider_id, delivered, error))
    got = await cur.fetchone()
    return bool(got and got["known"])


QUEUE_STATE = "SELECT * FROM kntc.notify_queue_state()"

# After an outage longer than the attempts last (about four hours): the messages given up since then,
# never taken by the gateway or the relay, queued again with their attempts counted from zero. A
# message the provider took and later reported undelivered is not resent (it would be the same id).
REQUEUE = """
UPDATE kntc.notification SET status = 'queued', attempts = 0, next_at = now(), last_error = NULL
 WHERE status = 'failed' AND sent_at IS NULL AND last_attempt_at >= %(since)s
   AND (%(channel)s::text IS NULL OR channel = %(channel)s)
RETURNING channel
"""


# -- consent after reception (migration 0016) -------------------------------------------------------

class ConsentRefused(Exception):
    def __init__(self, status: int, vi: str, en: str) -> None:
        super().__init__(en)
        self.status, self.vi, self.en = status, vi, en


def _refusal(exc: Exception) -> ConsentRefused:
    msg = getattr(getattr(exc, "diag", None), "message_primary", None) or ""
    vi, _, en = msg.partition(" / ")
    status = 403 if isinstance(exc, psycopg.errors.InsufficientPrivilege) else 400
    return ConsentRefused(status, vi or "Không thay đổi được.", en or "refused")


async def public_choice(conn: AsyncConnection[Any], code: str, secret: str,
                        channels: list[str] | None) -> dict[str, Any] | None:
    """The citizen's choice, proved by the receipt's code and secret (None for a wrong one): read it
    (`channels` None) or set it for every party of the case with an address for it ([] withdraws)."""
    try:
        cur = await conn.execute("SELECT * FROM kntc.public_notify_choice(%s, %s, %s)",
                                 (code.strip().upper(), normalise_lookup_secret(secret), channels))
    except psycopg.errors.CheckViolation as exc:
        raise _refusal(exc) from None
    return await cur.fetchone()


async def officer_set(conn: AsyncConnection[Any], party_id: str, channels: list[str], reason: str) -> list[str]:
    """The officer records the citizen's request (the unit holding the case; the database checks who)."""
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT kntc.notify_consent_set(%s, %s, %s) AS now", (party_id, channels, reason))
            row = await cur.fetchone()
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation) as exc:
        raise _refusal(exc) from None
    return list(row["now"]) if row else []


CONSENT_CHANGES = """
SELECT x.created_at, x.before, x.after, x.source, x.reason, x.cancelled, a.username AS changed_by,
       p.full_name AS party_name
  FROM kntc.notify_consent_change x
  LEFT JOIN kntc.account a ON a.id = x.changed_by
  LEFT JOIN kntc.party p ON p.id = x.party_id
 WHERE x.case_id = %s
 ORDER BY x.created_at, x.id
"""


async def consent_changes(conn: AsyncConnection[Any], case_id: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(CONSENT_CHANGES, (case_id,))
    return await cur.fetchall()
