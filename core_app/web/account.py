"""The officer's own account: the setup a first login (or an administrator's reset) asks for, the
password, the second factor and the sessions.

A setup session acts on nothing, so the gate refuses it: the setup steps find the officer through
the login role by the session cookie (`account_setup.whose`), as the API's setup routes do. The
account page with its sessions needs a full session and goes through the gate like every page.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from core_app import throttle
from core_app.repo import account_admin, account_setup, accounts
from core_app.web import guard
from core_app.web.base import WebError, acting, form_of, login_url, said, text
from core_app.web.render import page

router = APIRouter(prefix="/app/account", include_in_schema=False)

HANDLE = re.compile(r"^[0-9a-f]{18}$")
REQUIRED = ("Bắt buộc nhập.", "Required.")
SETUP = "/app/account/setup"
T = TypeVar("T")


def _token(request: Request) -> str | None:
    return request.cookies.get(guard.SESSION_COOKIE)


def _to_login() -> Response:
    resp = RedirectResponse(login_url(SETUP, "expired"), status_code=303)
    resp.delete_cookie(guard.SESSION_COOKIE, path="/")
    return resp


async def _whose(request: Request) -> dict[str, Any] | None:
    async with request.app.state.db.auth_transaction() as conn:
        try:
            return await account_setup.whose(conn, _token(request))
        except account_setup.SetupRefused:
            return None


async def _step_page(request: Request, row: dict[str, Any], step: str, status_code: int = 200,
                     **ctx: Any) -> Response:
    """A step of the setup or of a factor's enrolment, in a setup session or a full one."""
    if row["purpose"] == "full":
        # A full session's page carries the menu, which needs the gate's actor.
        async with acting(request):
            pass
    # Only what the page shows: the row also holds the password's hash and the sealed secrets.
    me = {k: row[k] for k in ("username", "full_name", "factor_required", "factor_enrolled")}
    return page(request, "account_setup.html", status_code=status_code, step=step, me=me,
                todo=account_setup.pending(row), in_setup=row["purpose"] == "setup",
                setup_user=row["full_name"] if row["purpose"] == "setup" else None,
                errors=ctx.pop("errors", {}), **ctx)


async def _own_page(request: Request, status_code: int = 200, **ctx: Any) -> Response:
    async with acting(request) as (conn, _):
        me = await accounts.get_account(conn, None)
        sessions = await account_admin.sessions(conn, None)
    return page(request, "my_account.html", status_code=status_code, me=me, sessions=sessions,
                password_errors=ctx.pop("password_errors", {}), factor_error=ctx.pop("factor_error", None),
                done=request.query_params.get("done"), **ctx)


@router.get("")
async def own_account(request: Request) -> Response:
    # A setup session is sent to its setup by the gate's refusal.
    return await _own_page(request)


@router.get("/setup")
async def setup(request: Request) -> Response:
    row = await _whose(request)
    if row is None:
        return _to_login()
    if row["purpose"] == "full":
        return RedirectResponse("/app/account", status_code=303)
    todo = account_setup.pending(row)
    return await _step_page(request, row, "password" if todo["password_change"] else "factor_password")


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    field: str | None
    message: tuple[str, str]


async def _attempt(request: Request, work: Callable[[Any, str | None, str], Awaitable[T]]) -> T | Refusal:
    """`work(conn, token, address)` as the login role, committed even when refused (a wrong current
    password counts like a failed login); a refusal, the throttle's included, as a Refusal."""
    token, address = _token(request), guard.client_address(request)
    try:
        return await account_setup.committed(request.app.state.db, lambda conn: work(conn, token, address))
    except account_setup.SetupRefused as exc:
        return Refusal(exc.status, exc.code, exc.field, said(exc.vi, exc.en))
    except throttle.Throttled as exc:
        return Refusal(429, exc.code, None, said(exc.vi, exc.en))


@router.post("/password")
async def change_password(request: Request) -> Response:
    form = await form_of(request)
    # Passwords as typed: a space at either end is part of a passphrase.
    current, new, again = (str(form.get(k) or "") for k in ("current_password", "new_password", "confirm_password"))
    row = await _whose(request)
    if row is None:
        return _to_login()
    errors: dict[str, tuple[str, str]] = {}
    status = 400
    if not current:
        errors["current_password"] = REQUIRED
    if not new:
        errors["new_password"] = REQUIRED
    elif new != again:
        errors["confirm_password"] = ("Mật khẩu nhập lại không khớp.", "The two new passwords differ.")
    todo: dict[str, Any] = {}
    if not errors:
        got = await _attempt(request, lambda conn, token, address: account_setup.change_password(
            conn, token, current, new, address))
        if isinstance(got, Refusal):
            if got.code == "session_expired":
                return _to_login()
            status, errors = got.status, {got.field or "_form": got.message}
        else:
            todo = got
    if errors:
        if row["purpose"] == "setup":
            return await _step_page(request, row, "password", status_code=status, errors=errors)
        return await _own_page(request, status_code=status, password_errors=errors)
    if row["purpose"] == "full":
        return RedirectResponse("/app/account?done=password", status_code=303)
    # Every other session of the account has just ended; this one is full once nothing is left.
    return RedirectResponse(SETUP if todo["password_change"] or todo["factor_enrolment"] else "/app", status_code=303)


@router.post("/factor/begin")
async def factor_begin(request: Request) -> Response:
    form = await form_of(request)
    password = str(form.get("password") or "")
    row = await _whose(request)
    if row is None:
        return _to_login()
    key = request.app.state.settings.sealing_keys
    got = await _attempt(request, lambda conn, token, address: account_setup.factor_begin(
        conn, token, password, key, address)) if password else Refusal(400, "required", "password", REQUIRED)
    if isinstance(got, Refusal):
        if got.code == "session_expired":
            return _to_login()
        if row["purpose"] == "setup":
            return await _step_page(request, row, "factor_password", status_code=got.status,
                                    errors={"password": got.message})
        return await _own_page(request, status_code=got.status, factor_error=got.message)
    return await _step_page(request, row, "factor_scan", enrolment=got)


@router.post("/factor/confirm")
async def factor_confirm(request: Request) -> Response:
    form = await form_of(request)
    code = (text(form, "code") or "")[:32]
    before = await _whose(request)
    if before is None:
        return _to_login()
    key = request.app.state.settings.sealing_keys
    got = await _attempt(request, lambda conn, token, _: account_setup.factor_confirm(conn, token, code, key))
    if isinstance(got, Refusal):
        if got.code == "session_expired":
            return _to_login()
        # Without an enrolment under way the officer starts again from the password.
        step, field = ("factor_password", "password") if got.code == "no_enrolment" else ("factor_confirm", "code")
        return await _step_page(request, before, step, status_code=got.status, errors={field: got.message})
    codes, todo = got
    # The setup may be complete: the session is then a full one.
    row = await _whose(request)
    if row is None:
        return _to_login()
    if todo["password_change"] or todo["factor_enrolment"]:
        next_url = SETUP
    else:
        next_url = "/app" if before["purpose"] == "setup" else "/app/account"
    return await _step_page(request, row, "recovery", recovery_codes=codes, next_url=next_url)


@router.post("/sessions/end")
async def end_session(request: Request) -> Response:
    form = await form_of(request)
    handle = text(form, "handle") or ""
    gone = WebError(404, "Không có phiên này.", "No such session of yours.")
    if not HANDLE.match(handle):
        raise gone
    async with acting(request) as (conn, _):
        if not await account_admin.end_own_session(conn, handle):
            raise gone
    return RedirectResponse("/app/account?done=session#sessions", status_code=303)
