"""Who the client is, and the per-session / per-address budget on every API call.

The address comes from the peer, or from X-Real-IP when the peer is one of the configured
trusted proxies (nginx, which sets the header itself from the connection it accepted). From
anyone else the header is ignored: it would let a guesser pick a fresh address for every try.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from core_app import throttle
from core_app.api.errors import body


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(peer: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(ip in net for net in _networks(proxies))


def client_address(request: Request) -> str:
    """The address throttling counts against."""
    peer = request.client.host if request.client else "unknown"
    real = request.headers.get("x-real-ip", "").strip()
    if real and _trusted(peer, tuple(request.app.state.settings.trusted_proxies)):
        try:
            return str(ipaddress.ip_address(real))
        except ValueError:
            return peer  # not an address: the proxy did not set it, someone else did
    return peer


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.cookies.get("kntc_session")


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
            try:
                async with request.app.state.db.transaction() as conn:
                    await throttle.api_call(conn, token_of(request), client_address(request))
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
