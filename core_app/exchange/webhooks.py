"""Webhooks: each client's change feed pushed to its URL, signed the Standard Webhooks way.

The outbox is the feed itself and, per client, where delivery stands in it
(`kntc.exchange_webhook`: cursor, failed attempts, next try). A dispatcher (`kntc exchange deliver`,
one or more, on any app host) claims a due client (`kntc.exchange_webhook_claim`, login role: a
short feed token for one of its valid credentials), reads its feed as the client (the same query,
row-level security and access records as `GET /api/v1/feed`), and posts each event in order. The
cursor moves only past events the receiver acknowledged (2xx); a failure waits 5, 10, 20 … seconds (at
most an hour) and keeps the cursor, so a restart or a failover resumes where delivery stood: at
least once, with the event's cursor as `webhook-id` for the receiver to drop repeats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import httpx
import orjson
from psycopg import AsyncConnection

from core_app import sealing
from core_app.exchange import feed, log
from core_app.exchange.gate import Client

PURPOSE = "sealed webhook secret"
PAGE = 50
IDLE_S = 2
TIMEOUT_S = 10.0
READ_PURPOSE = "webhook delivery"


def new_secret() -> tuple[str, bytes]:
    """(the secret as the client keeps it, its bytes)."""
    raw = secrets.token_bytes(32)
    return "whsec_" + base64.b64encode(raw).decode(), raw


def seal(keys: sealing.Keys, client_id: int, raw: bytes) -> bytes:
    return sealing.seal(keys, PURPOSE, raw, str(client_id))


def signature(raw_secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(raw_secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


async def deliver_one(
    auth: AsyncConnection[Any], app: AsyncConnection[Any], keys: sealing.Keys, http: httpx.AsyncClient
) -> int | None:
    """One round for one due client: events delivered, or None when no webhook was due."""
    token = secrets.token_urlsafe(32)
    async with auth.transaction():
        cur = await auth.execute("SELECT * FROM kntc.exchange_webhook_claim(%s)", (token,))
        hook = await cur.fetchone()
    if hook is None:
        return None
    raw = sealing.unseal(keys, PURPOSE, bytes(hook["secret"]), str(hook["client_id"]))
    cursor, sent, error, more = hook["cursor"], 0, None, False
    async with app.transaction():
        await app.execute(
            "SELECT set_config('kntc.exchange_token', %s, true), set_config('kntc.exchange_cert', %s, true)",
            (token, hook["thumbprint"]),
        )
        cur = await app.execute(
            "SELECT * FROM kntc.exchange_begin(%s, %s) WHERE state = 'live'", (token, hook["thumbprint"])
        )
        row = await cur.fetchone()
        if row is None:
            error = "the client's token could not be used"
        else:
            client = Client.from_row(row)
            page = await feed.page(app, client, cursor, PAGE, READ_PURPOSE)
            for item in page["items"]:
                body = orjson.dumps(
                    {"type": f"case.{item['event']}", "timestamp": item["at"], "data": item}, default=str
                )
                ts = int(time.time())
                headers = {
                    "webhook-id": item["cursor"],
                    "webhook-timestamp": str(ts),
                    "webhook-signature": signature(raw, item["cursor"], ts, body),
                    "content-type": "application/json",
                }
                try:
                    r = await http.post(hook["url"], content=body, headers=headers)
                    status, reply = r.status_code, r.content[:10_000]
                except httpx.HTTPError as exc:
                    status, reply = 0, str(exc).encode()
                await log.record_push(app, client.id, f"WEBHOOK {hook['url']}", body, status, reply)
                if not 200 <= status < 300:
                    error = f"HTTP {status}" if status else reply[:200].decode(errors="replace")
                    break
                cursor, sent = item["cursor"], sent + 1
            more = page["has_more"] and error is None
    async with auth.transaction():
        await auth.execute(
            "SELECT kntc.exchange_webhook_done(%s, %s, %s, %s, %s)",
            (hook["client_id"], cursor, error is not None, error, 0 if more else IDLE_S),
        )
    return sent


async def run(settings: Any, *, once: bool, on_round: Any = None) -> int:
    """Deliver until no webhook is due (`once`), or for ever with a pause between rounds."""
    import asyncio

    import psycopg
    from psycopg.rows import dict_row

    from core_app.waits import app_connection

    kw: dict[str, Any] = {"row_factory": dict_row, **app_connection(settings)}
    total = 0
    async with (
        await psycopg.AsyncConnection.connect(settings.auth_database_url, **kw) as auth,
        await psycopg.AsyncConnection.connect(settings.database_url, **kw) as app,
        httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http,
    ):
        while True:
            # The ring: a secret sealed under the previous key still signs while a rotation is under way.
            sent = await deliver_one(auth, app, settings.sealing_keys, http)
            if sent is None:
                if once:
                    return total
                await asyncio.sleep(IDLE_S)
                continue
            total += sent
            if on_round:
                on_round(sent)
