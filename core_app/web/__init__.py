"""The web interface: officer screens, the citizen lookup, statistics with charts and a map.

Server-rendered HTML (Jinja2), no JavaScript and no CDN: every asset is served by the app.
`install(app)` adds the routes, the HTML error pages and the security headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app.web import guard
from core_app.web.base import LoginRedirect, WebError, login_url
from core_app.web.render import page


def install(app: FastAPI) -> None:
    from core_app.web import admin, auth, cases, officer, public, stats

    for module in (auth, public, officer, cases, admin, stats):
        app.include_router(module.router)

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return page(request, "error.html", status_code=exc.status, error=exc)

    @app.exception_handler(LoginRedirect)
    async def to_login(request: Request, exc: LoginRedirect) -> Response:
        resp = RedirectResponse(login_url(exc.next_url, exc.reason), status_code=303)
        resp.delete_cookie(guard.SESSION_COOKIE, path="/")
        resp.delete_cookie(guard.SEEN_COOKIE, path="/")
        return resp

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        guard.security_headers(request, response)
        token = getattr(request.state, "refresh_seen", None)
        if token and guard.SEEN_COOKIE not in _deleted(response):
            guard.set_cookie(request, response, guard.SEEN_COOKIE, guard.seen_value(request, token))
        return response


def _deleted(response: Response) -> set[str]:
    names = set()
    for k, v in response.raw_headers:
        if k.lower() == b"set-cookie" and (b"Max-Age=0" in v or b"max-age=0" in v):
            names.add(v.split(b"=", 1)[0].decode())
    return names
