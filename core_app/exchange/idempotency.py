"""Idempotency-Key (IETF httpapi draft "The Idempotency-Key HTTP Header Field").

- the same key with the same request (method, path and body) answers the first answer again;
- the same key with another request is refused (422);
- while the first request with a key is still being processed, another with the same key is
  refused at once (409), never queued behind it.

The key is held by a transaction-level advisory lock for as long as the first request runs, and its
answer is stored in the same transaction as the work: either both are committed or neither, so a
crash leaves the key free for a retry. Answers are kept a day.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from core_app.exchange.problems import Problem

HEADER = "idempotency-key"
KEEP = "1 day"
# Statuses that depend on the moment, not on the request: not stored, so a retry does the work.
NOT_STORED = (409, 429)

LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 1100)) AS got"
FIND = "SELECT request_sha256, status, response FROM kntc.exchange_idempotency WHERE client_id = %s AND key = %s"
STORE = (
    "INSERT INTO kntc.exchange_idempotency (client_id, key, route, request_sha256, status, response) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
FORGET = f"DELETE FROM kntc.exchange_idempotency WHERE client_id = %s AND created_at < now() - interval '{KEEP}'"


def key_of(headers: Any) -> str:
    key = (headers.get(HEADER) or "").strip()
    if not key:
        raise Problem(
            400,
            "idempotency_key_missing",
            "every write carries an Idempotency-Key header (a unique value per operation, e.g. a UUID)",
        )
    if len(key) > 255 or not key.isprintable():
        raise Problem(400, "idempotency_key_invalid", "the Idempotency-Key is at most 255 printable characters")
    return key


async def once(
    conn: AsyncConnection[Any],
    client_id: int,
    key: str,
    route: str,
    body: bytes,
    work: Callable[[], Awaitable[tuple[int, bytes]]],
) -> tuple[int, bytes, bool]:
    """(status, answer, replayed): the stored answer for this key, or `work`'s, stored with it."""
    fingerprint = hashlib.sha256(route.encode() + b"\x00" + body).digest()
    cur = await conn.execute(LOCK, (f"{client_id}:{key}",))
    got = await cur.fetchone()
    if not got or not got["got"]:
        raise Problem(
            409,
            "idempotency_in_flight",
            "a request with this Idempotency-Key is still being processed: retry after it has been answered",
        )
    cur = await conn.execute(FIND, (client_id, key))
    seen = await cur.fetchone()
    if seen is not None:
        if bytes(seen["request_sha256"]) != fingerprint:
            raise Problem(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request: use a new key for a new operation",
            )
        return seen["status"], bytes(seen["response"]), True
    status, answer = await work()
    if status not in NOT_STORED and status < 500:
        await conn.execute(STORE, (client_id, key, route, fingerprint, status, answer))
    if random.random() < 0.01:  # noqa: S311 - when to sweep, not a secret
        await conn.execute(FORGET, (client_id,))
    return status, answer, False
