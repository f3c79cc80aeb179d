from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core_app import throttle
from core_app.api.deps import acting, database, token_of
from core_app.api.schemas import LoginIn
from core_app.gate import Actor
from core_app.repo import accounts

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
async def login(body: LoginIn, request: Request) -> dict[str, Any]:
    """Log in; send the token as `Authorization: Bearer <token>` on every later call."""
    db = database(request)
    token, expires = await accounts.login_committed(db, body.username, body.password,
                                                    request.app.state.settings.session_hours,
                                                    throttle.client_address(request))
    async with db.acting(token, request.app.state.settings.idle_seconds) as (_, row):
        account = Actor.from_row(row).as_json() if row else None
    return {"token": token, "expires_at": expires, "account": account}


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
