from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from core_app import throttle
from core_app.api.deps import acting, database, token_of
from core_app.api.errors import ApiError
from core_app.api.schemas import FactorBeginIn, FactorConfirmIn, LoginIn, PasswordChangeIn
from core_app.gate import Actor
from core_app.repo import account_admin, account_setup, accounts

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
async def login(body: LoginIn, request: Request) -> dict[str, Any]:
    """Log in; send the token as `Authorization: Bearer <token>` on every later call.

    An account with a second factor sends `code` too (the app's 6 digits, or a recovery code).
    When `setup` asks for something (an initial password to change, a factor to enrol), the token
    opens only `POST /api/auth/password` and `/api/auth/factor/*` until it is done."""
    db = database(request)
    settings = request.app.state.settings
    got = await accounts.login_committed(db, body.username, body.password, settings.session_hours,
                                         throttle.client_address(request), body.code, settings.sealing_keys)
    account = None
    if got.purpose == "full":
        async with db.acting(got.token, settings.idle_seconds) as (_, row):
            account = Actor.from_row(row).as_json() if row and row["account_id"] else None
    return {"token": got.token, "expires_at": got.expires_at, "account": account, "setup": got.setup}


@router.post("/logout")
async def logout(request: Request) -> dict[str, str]:
    token = token_of(request)
    if token:
        async with database(request).transaction() as conn:
            await accounts.logout(conn, token)
    return {"status": "logged_out"}


@router.get("/me")
async def me(request: Request) -> dict[str, Any]:
    async with acting(request) as (_, actor):
        return actor.as_json()


@router.get("/setup")
async def setup_state(request: Request) -> dict[str, Any]:
    """What the session still has to set up (works in a setup session and a full one)."""
    async with database(request).auth_transaction() as conn:
        return account_setup.pending(await account_setup.whose(conn, token_of(request)))


@router.post("/password")
async def change_password(body: PasswordChangeIn, request: Request) -> dict[str, Any]:
    """Change your own password (the current one is asked). Every other session of the account ends."""
    address = throttle.client_address(request)
    setup = await account_setup.committed(database(request), lambda conn: account_setup.change_password(
        conn, token_of(request), body.current_password, body.new_password, address))
    return {"setup": setup}


@router.post("/factor/begin")
async def factor_begin(body: FactorBeginIn, request: Request) -> dict[str, Any]:
    """Start enrolling a TOTP app: scan `qr_svg` (or type `secret`), then confirm with a code."""
    address = throttle.client_address(request)
    got = await account_setup.committed(database(request), lambda conn: account_setup.factor_begin(
        conn, token_of(request), body.password, request.app.state.settings.sealing_keys, address))
    return {"secret": got.secret, "otpauth_uri": got.uri, "qr_svg": got.qr_svg}


@router.post("/factor/confirm")
async def factor_confirm(body: FactorConfirmIn, request: Request) -> dict[str, Any]:
    """The code the app shows makes the factor current; the recovery codes are shown this once."""
    async with database(request).auth_transaction() as conn:
        codes, setup = await account_setup.factor_confirm(conn, token_of(request), body.code,
                                                          request.app.state.settings.sealing_keys)
    return {"recovery_codes": codes, "setup": setup}


@router.get("/sessions")
async def my_sessions(request: Request) -> dict[str, Any]:
    """Your live sessions (this one is `current`)."""
    async with acting(request) as (conn, _):
        return {"data": await account_admin.sessions(conn, None)}


@router.delete("/sessions/{handle}")
async def end_my_session(request: Request,
                         handle: Annotated[str, Path(pattern=r"^[0-9a-f]{18}$")]) -> dict[str, Any]:
    async with acting(request) as (conn, _):
        if not await account_admin.end_own_session(conn, handle):
            raise ApiError(404, "not_found", "Không có phiên này.", "no such session of yours")
    return {"status": "ended"}
