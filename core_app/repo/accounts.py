"""SQL for accounts, login and sessions."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from psycopg import AsyncConnection

from core_app import factor, sealing, security, throttle

log = logging.getLogger("kntc.accounts")


class LoginFailed(Exception):
    """A refused login; `kind` says why, in words the API and the login page both show."""

    MESSAGES: ClassVar[dict[str, tuple[int, str, str]]] = {
        "failed": (401, "Tên đăng nhập hoặc mật khẩu không đúng.", "wrong username or password"),
        "locked": (423, "Tài khoản đang bị khóa; hãy liên hệ quản trị đơn vị.",
                   "the account is locked: ask your unit administrator"),
        "second_factor_required": (401, "Hãy nhập mã xác thực 6 số từ ứng dụng trên điện thoại (hoặc một mã dự phòng).",
                                   "enter the 6-digit code from your authenticator app (or a recovery code)"),
        "second_factor_wrong": (401, "Mã xác thực không đúng hoặc đã dùng; hãy chờ mã mới.",
                                "the code is wrong or was used already: wait for the next one"),
        "second_factor_missing": (403, "Tài khoản này phải có xác thực hai lớp mà chưa đăng ký, và đã quá hạn đăng ký: "
                                       "hãy đề nghị quản trị đơn vị cấp lại (đặt lại xác thực hai lớp).",
                                  "this account needs a second factor, has none, and its time to enrol is over: ask "
                                  "your unit administrator to reset it"),
    }

    def __init__(self, kind: str = "failed") -> None:
        super().__init__(kind)
        self.kind = kind
        self.status, self.vi, self.en = self.MESSAGES[kind]

    @property
    def locked(self) -> bool:
        return self.kind == "locked"


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: Any
    # 'full', or 'setup': only the password change and the factor enrolment are open to it.
    purpose: str
    setup: dict[str, Any]


async def _second_factor(conn: AsyncConnection[Any], row: dict[str, Any], code: str | None,
                         secret_key: sealing.Keys) -> bool:
    """True when `code` is a good TOTP or recovery code of the account, consuming it."""
    if not code:
        return False
    if factor.looks_like_recovery(code):
        step, used = None, factor.recovery_hash(code)
        if used not in (row["factor_recovery"] or []):
            return False
    else:
        try:
            secret = factor.unseal(secret_key, row["factor_secret"], row["account_id"])
        except InvalidTag:
            # Sealed under another secret key or for another account: no code can match it.
            log.warning("second factor of account %s cannot be unsealed", row["account_id"])
            return False
        step, used = factor.matching_step(secret, code, row["factor_last_step"] or 0), None
        if step is None:
            return False
    cur = await conn.execute("SELECT kntc.factor_used(%s, %s, %s) AS ok", (row["account_id"], step, used))
    got = await cur.fetchone()
    return bool(got and got["ok"])


async def _look_up(conn: AsyncConnection[Any], username: str, address: str) -> dict[str, Any] | None:
    """The account's login row, or None; throttle.Throttled before the password is even checked
    when a budget of failures is spent (core_app/throttle.py); LoginFailed("locked")."""
    await throttle.before_login(conn, username, address)
    cur = await conn.execute("SELECT *, now() AS now FROM kntc.login_lookup(%s)", (username,))
    row = await cur.fetchone()
    # An account an administrator or support locked stays locked (failed logins no longer lock).
    if row and row["locked_until"] is not None and row["locked_until"] > row["now"]:
        await _failed(conn, row["account_id"], address)
        raise LoginFailed("locked")
    return row


async def _conclude(conn: AsyncConnection[Any], row: dict[str, Any] | None, ok: bool, new_hash: str | None,
                    username: str, hours: int, address: str, code: str | None, secret_key: sealing.Keys) -> LoginResult:
    """The password's verdict recorded, the second factor checked, the session opened."""
    account_id = row["account_id"] if row else None
    if row is None or not row["is_active"] or not ok:
        # Unknown names count as failures too: the budgets must not tell which accounts exist.
        await throttle.login_failed(conn, username, address)
        await _failed(conn, account_id, address)
        if row is not None:
            await conn.execute("SELECT kntc.login_result(%s, false)", (account_id,))
        raise LoginFailed()
    enrolled = row["factor_secret"] is not None
    if enrolled and not code:
        raise LoginFailed("second_factor_required")
    if enrolled and not await _second_factor(conn, row, code, secret_key):
        await throttle.login_failed(conn, username, address)
        await _failed(conn, account_id, address)
        raise LoginFailed("second_factor_wrong")
    in_grace = row["factor_due_at"] is not None and row["factor_due_at"] > row["now"]
    must_enrol = row["factor_required"] and not enrolled
    if row["must_change_password"]:
        purpose = "setup"
    elif must_enrol and not in_grace:
        # Enrolling now would let whoever holds the password choose the factor: only an
        # administrator's reset (a new initial password, delivered by hand) opens the setup.
        await _failed(conn, account_id, address)
        raise LoginFailed("second_factor_missing")
    else:
        purpose = "full"
    await conn.execute("SELECT kntc.login_result(%s, %s, %s)", (account_id, ok, new_hash))
    await throttle.login_succeeded(conn, username, address)
    token = security.new_session_token()
    # The database bounds the lifetime (kntc.session_max_hours), refuses a full session the account
    # is not entitled to (an account disabled meanwhile included) and records the login.
    cur = await conn.execute("SELECT kntc.session_open(%s, %s, %s, %s, %s) AS expires_at",
                             (account_id, token, hours, address, purpose))
    expires = await cur.fetchone()
    setup = {"password_change": bool(row["must_change_password"]),
             "factor_enrolment": bool(must_enrol and purpose == "setup"),
             "factor_due_at": row["factor_due_at"] if must_enrol else None}
    return LoginResult(token, expires["expires_at"] if expires else None, purpose, setup)


async def _failed(conn: AsyncConnection[Any], account_id: int | None, address: str) -> None:
    await conn.execute("SELECT kntc.record_login_failure(%s, %s)", (account_id, address))


async def login_committed(db: Any, username: str, password: str, hours: int, address: str,
                          code: str | None = None, secret_key: sealing.Keys = "") -> LoginResult:
    """A session for the account, or LoginFailed / throttle.Throttled; failures are committed.

    Through the login role (kntc_auth): the application role may neither read a password hash nor
    open a session. The password is verified between two short transactions, holding no pooled
    connection: argon2 is tens of milliseconds of CPU, and the login pool is small, so at a login
    rush a connection held through it would leave the next logins waiting for the pool (503).
    An account on an initial password, or one that must enrol a second factor, gets a *setup*
    session: the database gives it nothing until the setup is done (kntc.actor()).
    """
    username = username.strip().lower()
    failure: LoginFailed | None = None
    async with db.auth_transaction() as conn:
        try:
            row = await _look_up(conn, username, address)
        except LoginFailed as exc:
            failure = exc  # leave the block normally so the failed-login count is committed
    if failure is not None:
        raise failure
    # In a thread (argon2 releases the GIL): the worker's other requests are not held behind it.
    ok, new_hash = await asyncio.to_thread(security.verify_password, row["password_hash"] if row else None, password)
    async with db.auth_transaction() as conn:
        try:
            return await _conclude(conn, row, ok, new_hash, username, hours, address, code, secret_key)
        except LoginFailed as exc:
            failure = exc
    raise failure


async def logout(conn: AsyncConnection[Any], token: str) -> None:
    await conn.execute("SELECT kntc.session_close(%s)", (token,))


ACCOUNT_COLUMNS = ("a.id, a.username, a.full_name, u.code AS unit, u.name AS unit_name, a.roles, a.clearance, "
                   "a.is_active, a.locked_until, a.created_at, a.email, a.phone, a.must_change_password, "
                   "a.last_login_at, a.factor_enrolled_at IS NOT NULL AS factor_enrolled, "
                   "kntc.factor_required(a.roles, a.clearance) AS factor_required, a.factor_due_at")


@dataclass(frozen=True)
class Directory:
    """Which accounts of the administrator's area to list (every filter optional)."""

    unit: str | None = None
    # A part of the username, full name, e-mail or phone.
    q: str | None = None
    active: bool | None = None
    # No login for this many days (never logged in counts from the account's creation).
    stale_days: int | None = None
    # Still on the initial password an administrator issued.
    initial: bool = False
    # Required to hold a second factor and holding none.
    no_factor: bool = False


async def list_accounts(conn: AsyncConnection[Any], unit: str | None, per_page: int,
                        after: str | None = None, filters: Directory | None = None, *,
                        officer: bool = True) -> dict[str, Any]:
    """By unit code and username; `after` is the `next` cursor of the previous page (keyset paging).
    Row-level security keeps the list to the officer's area, whatever the filters ask. `officer=False`
    for the operator's command line, which reads as the schema's owner with no officer acting."""
    from core_app.repo import keyset

    f = filters or Directory(unit=unit)
    key = keyset.decode(after, 2)
    like = "%" + f.q.strip().lower().replace("\\", "").replace("%", "").replace("_", "\\_") + "%" if f.q else None
    # The officer's area, stated as row-level security judges it (their own account is in it too): the
    # list then starts from the area's units rather than checking every account in code order.
    area = "u.path <@ (SELECT (kntc.actor()).scope_path) AND " if officer else ""
    cur = await conn.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
        f"WHERE {area}(%(unit)s::text IS NULL OR u.path <@ (SELECT path FROM kntc.unit WHERE code = %(unit)s)) "
        "AND (%(like)s::text IS NULL OR lower(a.username) LIKE %(like)s OR lower(a.full_name) LIKE %(like)s "
        "     OR lower(a.email) LIKE %(like)s OR a.phone LIKE %(like)s) "
        "AND (%(active)s::boolean IS NULL OR a.is_active = %(active)s) "
        "AND (%(stale)s::integer IS NULL OR coalesce(a.last_login_at, a.created_at) "
        "     < now() - make_interval(days => %(stale)s)) "
        "AND (NOT %(initial)s OR a.must_change_password) "
        "AND (NOT %(no_factor)s OR (kntc.factor_required(a.roles, a.clearance) AND a.factor_enrolled_at IS NULL)) "
        "AND (%(after_unit)s::text IS NULL OR (u.code, a.username) > (%(after_unit)s, %(after_name)s::text)) "
        "ORDER BY u.code, a.username LIMIT %(limit)s",
        {"unit": f.unit or unit, "like": like, "active": f.active, "stale": f.stale_days, "initial": f.initial,
         "no_factor": f.no_factor, "limit": per_page + 1, "after_unit": key[0] if key else None,
         "after_name": key[1] if key else None})
    return keyset.page(await cur.fetchall(), per_page, "unit", "username")


async def get_account(conn: AsyncConnection[Any], username: str | None) -> dict[str, Any] | None:
    """One account of the officer's area by username, or the officer's own (None); row-level security
    decides, so an account outside the area is None, as one that does not exist."""
    where = "a.username = lower(%s)" if username else "a.id = (kntc.actor()).account_id AND %s::text IS NULL"
    cur = await conn.execute(f"SELECT {ACCOUNT_COLUMNS} FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
                             f"WHERE {where}", (username,))
    return await cur.fetchone()


class GrantRefused(Exception):
    """The acting administrator may not grant these roles or this clearance in this unit."""

    vi = ("Không được cấp vai trò hoặc mức tiếp cận mật cao hơn quyền của mình: quản trị đơn vị cấp các vai trò "
          "tiếp dân, xử lý, giải quyết, đọc ngoài trong đơn vị mình và cấp dưới; thủ trưởng và quản trị đơn vị chỉ "
          "cho đơn vị cấp dưới; quản trị hệ thống chỉ do quản trị hệ thống cấp; mức mật không quá mức của mình.")
    en = ("you may not grant more than your own level allows: a unit administrator grants reception, handling, "
          "resolution and external_reader in their unit and below, head and unit_admin only in units below "
          "their own, never sysadmin, and no clearance above their own")


# The rule lives in the database (kntc.may_grant, used by the account policies); asking it first
# gives the administrator the reason instead of a bare refusal.
MAY_GRANT = ("SELECT kntc.may_grant(u.id, %s::text[], %s::smallint) AS ok, "
             "coalesce(u.path <@ (kntc.actor()).unit_path, false) AS in_tree FROM kntc.unit u WHERE u.code = %s")


async def create_account(conn: AsyncConnection[Any], data: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Insert an account on a one-time initial password; row-level security decides whether the
    actor may (None: no such unit; GrantRefused: roles or clearance above what the actor may grant).
    Returns the row and the initial password, which the administrator hands to the officer."""
    cur = await conn.execute(MAY_GRANT, (data["roles"], data["clearance"], data["unit"]))
    allowed = await cur.fetchone()
    # A unit outside the administrator's tree is refused by the INSERT below, with its own message.
    if allowed is not None and allowed["in_tree"] and not allowed["ok"]:
        raise GrantRefused()
    initial = security.new_initial_password()
    cur = await conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, email, phone, "
        "must_change_password) "
        "SELECT %(username)s, %(full_name)s, u.id, %(roles)s, %(clearance)s, %(password_hash)s, %(email)s, %(phone)s, "
        "true FROM kntc.unit u WHERE u.code = %(unit)s AND u.valid_to IS NULL RETURNING id",
        {"email": None, "phone": None, **data, "password_hash": security.hash_initial_password(initial)})
    return await cur.fetchone(), initial
