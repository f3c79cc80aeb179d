"""What a route needs: the database, the rulebook, and the officer acting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection

from core_app.api.errors import ApiError
from core_app.db import Database
from core_app.repo.cases import RuleBook

SESSION_COOKIE = "kntc_session"


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE)


def database(request: Request) -> Database:
    return request.app.state.db


def rulebook(request: Request) -> RuleBook:
    return request.app.state.rulebook


def today(request: Request) -> date:
    # Tests and drills may pin the clock; production uses the server's date (Asia/Ho_Chi_Minh).
    return request.app.state.clock()


@asynccontextmanager
async def acting(request: Request) -> AsyncIterator[tuple[AsyncConnection[Any], dict[str, Any]]]:
    token = token_of(request)
    if not token:
        raise ApiError(401, "login_required", "Cần đăng nhập.", "log in first")
    async with database(request).acting(token) as (conn, actor):
        if actor is None:
            raise ApiError(401, "session_expired", "Phiên đăng nhập đã hết hạn; hãy đăng nhập lại.",
                           "your session has expired: log in again")
        yield conn, actor


def require_role(actor: dict[str, Any], *roles: str) -> None:
    if not set(actor["roles"]) & set(roles):
        raise ApiError(403, "role_not_allowed", "Tài khoản không có vai trò được phép.",
                       f"your account needs one of the roles: {', '.join(roles)}")
