"""Login, logout and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app import throttle
from core_app.repo import accounts
from core_app.web import guard
from core_app.web.base import form_of, said, text
from core_app.web.render import page

router = APIRouter(include_in_schema=False)


def safe_next(url: str | None, default: str = "/app") -> str:
    """Only a path on this site: an open redirect would help phishing."""
    if not url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url


@router.get("/")
async def root(request: Request) -> Response:
    return RedirectResponse("/app" if request.cookies.get(guard.SESSION_COOKIE) else "/login", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None, reason: str | None = None) -> Response:
    return page(request, "login.html", next=safe_next(next), reason=reason, form={}, error=None, wants_code=False)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    username, password = text(form, "username") or "", str(form.get("password") or "")
    code = text(form, "code")
    next_url = safe_next(text(form, "next"))
    settings = request.app.state.settings
    error: tuple[str, str] | None = None
    status = 401 if username else 400
    failed: accounts.LoginFailed | throttle.Throttled | None = None
    got: accounts.LoginResult | None = None
    if not username or not password:
        error = ("Hãy nhập tên đăng nhập và mật khẩu.", "Enter your username and password.")
    else:
        try:
            got = await accounts.login_committed(request.app.state.db, username, password, settings.session_hours,
                                                 guard.client_address(request), code, settings.sealing_keys)
        except (accounts.LoginFailed, throttle.Throttled) as exc:
            failed = exc
        if failed is not None:
            error = said(failed.vi, failed.en)
            status = 429 if isinstance(failed, throttle.Throttled) else failed.status
    if error or got is None:
        wants_code = isinstance(failed, accounts.LoginFailed) and failed.kind in ("second_factor_required",
                                                                                  "second_factor_wrong")
        return page(request, "login.html", status_code=status, next=next_url,
                    form={"username": username}, error=error, wants_code=wants_code)
    # A setup session may only finish its setup: it goes there whatever it asked for.
    resp = RedirectResponse("/app/account/setup" if got.purpose == "setup" else next_url, status_code=303)
    guard.set_cookie(request, resp, guard.SESSION_COOKIE, got.token, max_age=settings.session_hours * 3600)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form_of(request)
    token = request.cookies.get(guard.SESSION_COOKIE)
    if token:
        async with request.app.state.db.transaction() as conn:
            await accounts.logout(conn, token)
    resp = RedirectResponse("/login?reason=logout", status_code=303)
    resp.delete_cookie(guard.SESSION_COOKIE, path="/")
    return resp


@router.get("/lang/{lang}")
async def switch_language(request: Request, lang: str, next: str | None = None) -> Response:
    resp = RedirectResponse(safe_next(next, "/"), status_code=303)
    guard.set_cookie(request, resp, guard.LANG_COOKIE, "en" if lang == "en" else "vi", max_age=365 * 86400)
    return resp
