"""A read that met the database unavailable is answered from a second attempt, once.

A failover or a planned switchover ends every server session (HAProxy's shutdown-sessions, a
PostgreSQL stopping under Patroni), and a new leader may take a moment before its first write is
accepted. A request caught in that moment failed with 503 although the database answered a second
later. A read (GET or HEAD) changes nothing that its failure did not roll back, so it is run again
after a short wait and the officer sees the answer; a write is never replayed here (it may have
committed before its connection broke), and keeps its 503.

Only an answer that the database error handlers marked unavailable is retried (`mark_unavailable`):
a 503 for any other reason (a report without its fonts) is the answer. The call was counted once
against the session's budget, before this (core_app/api/throttling.py); the second attempt is not
counted again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core_app.db import IDLE_CHECK_SECONDS

log = logging.getLogger("kntc.read_retry")

UNAVAILABLE = "kntc_database_unavailable"
# Longer than the pool lets a connection sit unchecked: every connection the failure broke is then
# checked before its next use and replaced (core_app/db.py). Long enough too for HAProxy to see a
# new leader (its checks run every 500 ms); short beside the pool's own wait for a connection (10 s).
RETRY_AFTER_S = IDLE_CHECK_SECONDS + 0.2
READS = frozenset({"GET", "HEAD"})


def mark_unavailable(request: Request) -> None:
    """Called by the handlers that answer a database error with 503."""
    setattr(request.state, UNAVAILABLE, True)


class ReadRetried:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READS:
            await self.app(scope, receive, send)
            return
        # One dict shared by every copy of the scope below, where the handlers mark the answer.
        scope.setdefault("state", {})
        held: list[Message] = []

        async def hold_unavailable(message: Message) -> None:
            # The first answer's start is held until it is known not to be a retried 503.
            if held or (message["type"] == "http.response.start" and message["status"] == 503
                        and scope.get("state", {}).get(UNAVAILABLE)):
                held.append(message)
                return
            await send(message)

        await self.app(scope, receive, hold_unavailable)
        if not held:
            return
        log.info("a read met the database unavailable; answered from a second attempt (%s)", scope["path"])
        await asyncio.sleep(RETRY_AFTER_S)
        state: dict[str, Any] = {k: v for k, v in scope.get("state", {}).items() if k != UNAVAILABLE}
        await self.app({**scope, "state": state}, _no_body(receive), send)


def _no_body(receive: Receive) -> Receive:
    """A read's request again: its (empty) body first, then whatever the client sends (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again
