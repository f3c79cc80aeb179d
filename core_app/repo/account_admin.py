"""Changing an account: one door, `kntc.account_admin`, for the web pages, the API and the operator's
commands alike. The database applies the granting rule to the account as it is and as it becomes,
requires a reason, ends the sessions whose powers changed and writes the access log.
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app import security
from core_app.repo.accounts import GrantRefused

Action = Literal["disable", "enable", "set_roles", "set_unit", "set_clearance", "reset_password", "reset_factor",
                 "end_sessions"]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]


class AdminRefused(Exception):
    def __init__(self, status: int, code: str, vi: str, en: str, field: str | None = None) -> None:
        super().__init__(en)
        self.status, self.code, self.vi, self.en, self.field = status, code, vi, en, field


NOT_FOUND = AdminRefused(404, "account_not_found", "Không có tài khoản này trong các đơn vị bạn quản trị.",
                         "no such account among those you manage", "username")
GRANT_REFUSED = AdminRefused(403, "grant_not_allowed", GrantRefused.vi, GrantRefused.en)


def _refusal(exc: psycopg.Error) -> AdminRefused:
    msg = exc.diag.message_primary or ""
    if isinstance(exc, psycopg.errors.NoDataFound):
        return NOT_FOUND
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        if exc.diag.message_hint == "grant_refused":
            return GRANT_REFUSED
        if "own account" in msg:
            return AdminRefused(403, "own_account", "Quản trị viên không tự sửa tài khoản của mình; hãy nhờ quản trị "
                                "viên khác.", "administrators do not change their own account: another one does")
        return AdminRefused(403, "role_not_allowed", "Chỉ quản trị đơn vị hoặc quản trị hệ thống mới thay đổi tài "
                            "khoản.", "only a unit or system administrator changes accounts")
    if isinstance(exc, psycopg.errors.InvalidParameterValue):
        if "reason" in msg:
            return AdminRefused(400, "reason_required", "Hãy ghi lý do (5 đến 500 ký tự).",
                                "give a reason (5 to 500 characters)", "reason")
        if "unit" in msg:
            return AdminRefused(400, "unit_not_found", "Không có đơn vị hiện hành với mã này.",
                                "no current unit with this code", "unit")
        return AdminRefused(400, "invalid_input", "Thao tác không hợp lệ.", msg)
    if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.InvalidTextRepresentation |
                  psycopg.errors.NumericValueOutOfRange):
        return AdminRefused(400, "invalid_value",
                            "Giá trị không hợp lệ: vai trò đọc ngoài không đi kèm vai trò khác; mức mật 0, 1 hoặc 2.",
                            "invalid value: external_reader stands alone; clearance is 0, 1 or 2")
    raise exc


async def act(conn: AsyncConnection[Any], username: str, action: str, reason: str,
              args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply one change; the result is what the access log recorded, plus `initial_password` after a
    reset (shown once to the administrator, who hands it to the officer)."""
    if action not in ACTIONS:
        raise AdminRefused(400, "unknown_action", "Thao tác không có.", f"unknown action; one of {', '.join(ACTIONS)}",
                           "action")
    args = dict(args or {})
    initial = None
    if action in ("reset_password", "reset_factor"):
        initial = security.new_initial_password()
        args["password_hash"] = security.hash_initial_password(initial)
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT kntc.account_admin(%s, %s, %s, %s) AS detail",
                                     (username, action, reason, Jsonb(args)))
            row = await cur.fetchone()
    except psycopg.Error as exc:
        raise _refusal(exc) from None
    detail = dict(row["detail"]) if row else {}
    if initial:
        detail["initial_password"] = initial
    return detail


async def sessions(conn: AsyncConnection[Any], username: str | None) -> list[dict[str, Any]]:
    """The live sessions of the officer (None) or of an account the administrator manages."""
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT * FROM kntc.account_sessions(%s)", (username,))
            return await cur.fetchall()
    except psycopg.Error as exc:
        raise _refusal(exc) from None


async def end_own_session(conn: AsyncConnection[Any], handle: str) -> bool:
    cur = await conn.execute("SELECT kntc.session_end(%s) AS n", (handle,))
    row = await cur.fetchone()
    return bool(row and row["n"])
