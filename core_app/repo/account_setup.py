"""The officer's own steps, by session token through the login role: changing the password and
enrolling a second factor. They work from a setup session (initial password, factor to enrol)
as from a full one; when nothing is left to set up, the database makes the session a full one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import AsyncConnection

from core_app import factor, sealing, security, throttle

T = TypeVar("T")


class SetupRefused(Exception):
    def __init__(self, status: int, code: str, vi: str, en: str, field: str | None = None) -> None:
        super().__init__(en)
        self.status, self.code, self.vi, self.en, self.field = status, code, vi, en, field


NO_SESSION = SetupRefused(401, "session_expired", "Phiên đăng nhập đã hết hạn; hãy đăng nhập lại.",
                          "your session has expired: log in again")
def wrong_password() -> SetupRefused:
    return SetupRefused(400, "wrong_password", "Mật khẩu hiện tại không đúng.", "the current password is wrong",
                        "current_password")


async def committed(db: Any, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """`work` in a transaction of the login role that commits even when `work` refuses: a wrong
    current password must be counted (core_app/throttle.py) although the change is refused."""
    failure: SetupRefused | None = None
    async with db.auth_transaction() as conn:
        try:
            return await work(conn)
        except SetupRefused as exc:
            failure = exc
    raise failure


async def whose(conn: AsyncConnection[Any], token: str | None) -> dict[str, Any]:
    """The account behind a live session of either purpose, with what its setup still needs."""
    if not token:
        raise NO_SESSION
    cur = await conn.execute("SELECT * FROM kntc.session_account(%s)", (token,))
    row = await cur.fetchone()
    if row is None:
        raise NO_SESSION
    return row


def pending(row: dict[str, Any]) -> dict[str, Any]:
    """What the officer still has to do before the session acts (the API's `setup` object)."""
    must_enrol = bool(row["factor_required"] and not row["factor_enrolled"])
    return {"password_change": bool(row["must_change_password"]),
            "factor_enrolment": must_enrol and row["purpose"] == "setup",
            "factor_due_at": row["factor_due_at"] if must_enrol else None,
            "factor_enrolled": bool(row["factor_enrolled"]), "factor_required": bool(row["factor_required"])}


async def _check_current(conn: AsyncConnection[Any], row: dict[str, Any], password: str, address: str) -> None:
    """The current password, counted like a login: a stolen session must not become a way to guess it."""
    await throttle.before_login(conn, row["username"], address)
    ok, _ = await asyncio.to_thread(security.verify_password, row["password_hash"], password)
    if not ok:
        await throttle.login_failed(conn, row["username"], address)
        await conn.execute("SELECT kntc.record_login_failure(%s, %s)", (row["account_id"], address))
        raise wrong_password()


async def change_password(conn: AsyncConnection[Any], token: str | None, current: str, new: str, address: str,
                          context: tuple[str, ...] = ()) -> dict[str, Any]:
    row = await whose(conn, token)
    await _check_current(conn, row, current, address)
    if new == current:
        raise SetupRefused(400, "same_password", "Mật khẩu mới phải khác mật khẩu hiện tại.",
                           "the new password must differ from the current one", "new_password")
    problem = security.password_problem(new, (row["username"], row["full_name"], *context))
    if problem:
        vi, _, en = problem.partition(" / ")
        raise SetupRefused(400, "weak_password", vi, en or vi, "new_password")
    new_hash = await asyncio.to_thread(security.hash_password, new)
    await conn.execute("SELECT kntc.password_set(%s, %s)", (token, new_hash))
    return pending(await whose(conn, token))


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


async def factor_begin(conn: AsyncConnection[Any], token: str | None, password: str, secret_key: sealing.Keys,
                       address: str) -> Enrolment:
    """A new secret, pending until a code it produced confirms it. The current password is asked
    even in a live session: a borrowed browser must not be able to bind its own phone."""
    row = await whose(conn, token)
    await _check_current(conn, row, password, address)
    secret = factor.new_secret()
    await conn.execute("SELECT kntc.factor_begin(%s, %s)",
                       (token, factor.seal(secret_key, secret, row["account_id"])))
    uri = factor.provisioning_uri(secret, row["username"])
    return Enrolment(secret, uri, factor.qr_svg(uri))


async def factor_confirm(conn: AsyncConnection[Any], token: str | None, code: str,
                         secret_key: sealing.Keys) -> tuple[list[str], dict[str, Any]]:
    """The recovery codes (shown once) and what is left of the setup."""
    row = await whose(conn, token)
    if row["factor_pending"] is None:
        raise SetupRefused(409, "no_enrolment", "Chưa bắt đầu đăng ký xác thực hai lớp; hãy bắt đầu lại.",
                           "no enrolment is under way: start again")
    secret = factor.unseal(secret_key, row["factor_pending"], row["account_id"])
    step = factor.matching_step(secret, code, 0)
    if step is None:
        raise SetupRefused(400, "wrong_code", "Mã không đúng: hãy nhập mã 6 số đang hiện trên ứng dụng.",
                           "wrong code: enter the 6-digit code your app shows now", "code")
    recovery = factor.new_recovery_codes()
    await conn.execute("SELECT kntc.factor_confirm(%s, %s, %s)", (token, step, recovery.hashes))
    return recovery.codes, pending(await whose(conn, token))
