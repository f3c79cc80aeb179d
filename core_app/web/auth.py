"""Login, logout and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app import throttle
from core_app.repo import accounts
from core_app.web import guard
from core_app.web.base import form_of, text
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
    return page(request, "login.html", next=safe_next(next), reason=reason, form={}, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    username, password = text(form, "username") or "", str(form.get("password") or "")
    next_url = safe_next(text(form, "next"))
    addr = guard.client_address(request)
    error = None
    status = 401 if username else 400
    if not username or not password:
        error = ("Hãy nhập tên đăng nhập và mật khẩu.", "Enter your username and password.")
    else:
        failed: accounts.LoginFailed | throttle.Throttled | None = None
        async with request.app.state.db.auth_transaction() as conn:
            try:
                token, _ = await accounts.login(conn, username, password, request.app.state.settings.session_hours,
                                                addr)
            except (accounts.LoginFailed, throttle.Throttled) as exc:
                # Caught inside the transaction so that the failure counts commit.
                failed = exc
        if isinstance(failed, throttle.Throttled):
            error, status = (failed.vi, failed.en + "."), 429
        elif failed is not None:
            error = (("Tài khoản tạm khóa; hãy liên hệ quản trị đơn vị.",
                      "The account is locked: ask your unit administrator.") if failed.locked else
                     ("Tên đăng nhập hoặc mật khẩu không đúng.", "Wrong username or password."))
    if error:
        return page(request, "login.html", status_code=status, next=next_url,
                    form={"username": username}, error=error)
    resp = RedirectResponse(next_url, status_code=303)
    guard.set_cookie(request, resp, guard.SESSION_COOKIE, token,
                     max_age=request.app.state.settings.session_hours * 3600)
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
