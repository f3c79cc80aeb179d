"""The per-session / per-address budget on every API call (the address: `throttle.client_address`)."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core_app import throttle
from core_app.api.errors import body
from core_app.gate import token_of


def too_many(exc: throttle.Throttled) -> ORJSONResponse:
    return ORJSONResponse(body(exc.code, exc.vi, exc.en, retry_after_s=exc.retry_after_s), status_code=429,
                          headers={"Retry-After": str(exc.retry_after_s)})


class ApiBudget:
    """Counts every /api/ call against its session or address; past the budget, 429. Plain ASGI:
    other paths go straight through, with nothing wrapped or buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            request = Request(scope)
            if scope["path"].startswith("/api/v1/") and token_of(request):
                # A connected system's calls count against its own rate (core_app.exchange.gate).
                await self.app(scope, receive, send)
                return
            if scope["path"].startswith("/api/notify/sms/"):
                # The SMS gateway's callbacks: every citizen's comes from the provider's one address, so
                # that address's budget would stop them all. They are signed (checked before any query)
                # and the lookup has its budgets per sender (core_app.notify.sms_lookup).
                await self.app(scope, receive, send)
                return
            db = request.app.state.db
            budget = throttle.budget_of(token_of(request), throttle.client_address(request))
            if budget.purpose == "api_session" and not scope["path"].startswith("/api/auth/"):
                # Counted now, in this process, and added to the shared counter with the next batch
                # (core_app/call_counts.py); judged by the officer's transaction
                # (core_app.db.Database.acting), before the route's work. A call that fails, rolls
                # back or never opens a transaction has been counted all the same. The login and
                # set-up routes work through the login role, not an officer's transaction: their
                # calls are counted before they run, as calls without a session.
                request.app.state.call_counts.add(budget.key)
                scope.setdefault("state", {})[throttle.BUDGET_STATE] = budget
                await self.app(scope, receive, send)
                return
            try:
                await throttle.api_call(db, budget)
            except throttle.Throttled as exc:
                await too_many(exc)(scope, receive, send)
                return
            except psycopg.Error:
                pass  # the database does not answer: the route meets the same and says so (503)
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(ApiBudget)

    @app.exception_handler(throttle.Throttled)
    async def throttled(_: Request, exc: throttle.Throttled) -> ORJSONResponse:
        return too_many(exc)
