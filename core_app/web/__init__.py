"""The web interface: officer screens, the citizen lookup, statistics with charts and a map, periodic reports.

Server-rendered HTML (Jinja2), no JavaScript and no CDN: every asset is served by the app.
`install(app)` adds the routes and the HTML error pages; `refusal` and `bad_input` are the gate's
and the input check's decisions as a page (core_app.app sends them here for the web paths).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from core_app.bad_input import BadInput
from core_app.gate import Refused
from core_app.web import guard
from core_app.web.base import WebError, login_url
from core_app.web.render import page


def install(app: FastAPI) -> None:
    from core_app.web import (
        account,
        account_detail,
        admin,
        auth,
        cases,
        consent,
        corrections,
        deadline_rules,
        officer,
        public,
        reports,
        roster_upload,
        stats,
    )

    # The roster's fixed paths before an account's /app/accounts/{username}.
    for module in (auth, public, officer, cases, consent, corrections, account, admin, roster_upload, account_detail,
                   stats, reports, deadline_rules):
        app.include_router(module.router)

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> Response:
        return page(request, "error.html", status_code=exc.status, error=exc)

    _html_errors_on_web_paths(app)


REFUSAL_REASONS = {"login_required": "", "session_expired": "expired", "idle": "idle"}


def refusal(request: Request, exc: Refused) -> Response:
    """The gate's decision as a page: log in again, or a 403 page."""
    if exc.reason == "role_not_allowed":
        return page(request, "error.html", status_code=403,
                    error=WebError(403, "Tài khoản không có quyền vào trang này.",
                                   "Your account may not open this page."))
    if exc.reason == "setup_required":
        return RedirectResponse("/app/account/setup", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    resp = RedirectResponse(login_url(target, REFUSAL_REASONS[exc.reason]), status_code=303)
    resp.delete_cookie(guard.SESSION_COOKIE, path="/")
    return resp


def bad_input(request: Request, exc: BadInput) -> Response:
    return page(request, "error.html", status_code=400, error=WebError(400, exc.vi, exc.en))


log = logging.getLogger("kntc.web")


def is_web(path: str) -> bool:
    return path in ("/", "/login", "/logout", "/lookup") or path.startswith(("/app", "/lang/"))


def _html_errors_on_web_paths(app: FastAPI) -> None:
    """On the web pages an error is a page in both languages; the API keeps its JSON answers."""
    from core_app.db_errors import describe
    from core_app.read_retry import mark_unavailable

    def wrap(exc_class: type[Exception], describe: Callable[[Exception], tuple[int, str, str]]) -> None:
        original = app.exception_handlers.get(exc_class)

        async def handler(request: Request, exc: Exception) -> Response:
            if is_web(request.url.path) or original is None:
                status, vi, en = describe(exc)
                if status >= 500 and isinstance(exc, psycopg.Error):
                    mark_unavailable(request)
                return page(request, "error.html", status_code=status, error=WebError(status, vi, en))
            return await original(request, exc)

        app.add_exception_handler(exc_class, handler)

    def db(exc: Exception) -> tuple[int, str, str]:
        assert isinstance(exc, psycopg.Error)
        status, body = describe(exc)
        if status >= 500:
            log.exception("database error on a web page")
        return status, body["message"], body["message_en"]

    def http(exc: Exception) -> tuple[int, str, str]:
        code = getattr(exc, "status_code", 400)
        if code == 404:
            return 404, "Không tìm thấy trang.", "Page not found."
        if code == 405:
            return 405, "Phương thức không được hỗ trợ.", "Method not allowed."
        return code, "Yêu cầu không hợp lệ.", "Bad request."

    def invalid(_: Exception) -> tuple[int, str, str]:
        return 400, "Địa chỉ trang có tham số không hợp lệ.", "The page address has an invalid parameter."

    def unexpected(exc: Exception) -> tuple[int, str, str]:
        log.error("unexpected error on a web page", exc_info=exc)
        return 500, "Lỗi hệ thống; đã ghi nhật ký.", "Internal error; it has been logged."

    wrap(psycopg.Error, db)
    wrap(StarletteHTTPException, http)
    wrap(RequestValidationError, invalid)
    wrap(Exception, unexpected)
