"""The per-session / per-address budget on every API call (the address: `throttle.client_address`)."""

from __future__ import annotations

import contextlib

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
                # Counted by the officer's transaction (core_app.db.Database.acting); whatever it
                # did not count (rolled back, or no transaction at all) is counted here, after.
                # The login and set-up routes work through the login role, not an officer's
                # transaction: their calls are counted before they run, as calls without a session.
                scope.setdefault("state", {})[throttle.BUDGET_STATE] = budget

                async def count() -> None:
                    if not budget.counted:
                        # The database does not answer: the route met the same and said so (503).
                        with contextlib.suppress(psycopg.Error):
                            await throttle.api_call(db, budget, refuse=False)

                async def sending(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        await count()  # before the client has its answer, so its next call sees it
                    await send(message)

                try:
                    await self.app(scope, receive, sending)
                finally:
                    await count()
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
