"""SQL for accounts, login and sessions."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from core_app import security, throttle


class LoginFailed(Exception):
    def __init__(self, locked: bool = False) -> None:
        super().__init__("locked" if locked else "failed")
        self.locked = locked


async def login(conn: AsyncConnection[Any], username: str, password: str, hours: int,
                address: str) -> tuple[str, Any]:
    """A session token and its expiry; raises LoginFailed, or throttle.Throttled before the password
    is even checked when a budget of failures is spent (core_app/throttle.py). `conn` is the login
    role's (kntc_auth): the application role may neither read a password hash nor open a session.
    Call it through `login_committed`: a failure must be recorded even though the login is refused."""
    username = username.strip().lower()
    await throttle.before_login(conn, username, address)
    cur = await conn.execute("SELECT * FROM kntc.login_lookup(%s)", (username,))
    row = await cur.fetchone()
    account_id = row["account_id"] if row else None
    # An account an administrator or support locked stays locked (failed logins no longer lock).
    if row and row["locked_until"] is not None:
        now = await (await conn.execute("SELECT now() AS now")).fetchone()
        if now and row["locked_until"] > now["now"]:
            await _failed(conn, account_id, address)
            raise LoginFailed(locked=True)
    ok, new_hash = security.verify_password(row["password_hash"] if row else None, password)
    if row is None or not row["is_active"] or not ok:
        # Unknown names count as failures too: the budgets must not tell which accounts exist.
        await throttle.login_failed(conn, username, address)
        await _failed(conn, account_id, address)
        if row is not None:
            await conn.execute("SELECT kntc.login_result(%s, false)", (account_id,))
        raise LoginFailed()
    await conn.execute("SELECT kntc.login_result(%s, %s, %s)", (account_id, ok, new_hash))
    await throttle.login_succeeded(conn, username, address)
    token = security.new_session_token()
    # The database bounds the lifetime (kntc.session_max_hours) and records the login.
    cur = await conn.execute("SELECT kntc.session_open(%s, %s, %s, %s) AS expires_at",
                             (account_id, token, hours, address))
    expires = await cur.fetchone()
    return token, expires["expires_at"] if expires else None


async def _failed(conn: AsyncConnection[Any], account_id: int | None, address: str) -> None:
    await conn.execute("SELECT kntc.record_login_failure(%s, %s)", (account_id, address))


async def login_committed(db: Any, username: str, password: str, hours: int, address: str) -> tuple[str, Any]:
    failure: LoginFailed | None = None
    async with db.auth_transaction() as conn:
        try:
            return await login(conn, username, password, hours, address)
        except LoginFailed as exc:
            failure = exc  # leave the block normally so the failed-login count is committed
    raise failure


async def logout(conn: AsyncConnection[Any], token: str) -> None:
    await conn.execute("SELECT kntc.session_close(%s)", (token,))


ACCOUNT_COLUMNS = ("a.id, a.username, a.full_name, u.code AS unit, u.name AS unit_name, a.roles, a.clearance, "
                   "a.is_active, a.locked_until, a.created_at")


async def list_accounts(conn: AsyncConnection[Any], unit: str | None, per_page: int,
                        after: str | None = None) -> dict[str, Any]:
    """By unit code and username; `after` is the `next` cursor of the previous page (keyset paging)."""
    from core_app.repo import keyset

    key = keyset.decode(after, 2)
    cur = await conn.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
        "WHERE (%(unit)s::text IS NULL OR u.path <@ (SELECT path FROM kntc.unit WHERE code = %(unit)s)) "
        "AND (%(after_unit)s::text IS NULL OR (u.code, a.username) > (%(after_unit)s, %(after_name)s::text)) "
        "ORDER BY u.code, a.username LIMIT %(limit)s",
        {"unit": unit, "limit": per_page + 1, "after_unit": key[0] if key else None,
         "after_name": key[1] if key else None})
    return keyset.page(await cur.fetchall(), per_page, "unit", "username")


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


async def create_account(conn: AsyncConnection[Any], data: dict[str, Any]) -> dict[str, Any] | None:
    """Insert an account; row-level security decides whether the actor may (None: no such unit;
    GrantRefused: roles or clearance above what the actor may grant)."""
    cur = await conn.execute(MAY_GRANT, (data["roles"], data["clearance"], data["unit"]))
    allowed = await cur.fetchone()
    # A unit outside the administrator's tree is refused by the INSERT below, with its own message.
    if allowed is not None and allowed["in_tree"] and not allowed["ok"]:
        raise GrantRefused()
    cur = await conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
        "SELECT %(username)s, %(full_name)s, u.id, %(roles)s, %(clearance)s, %(password_hash)s "
        "FROM kntc.unit u WHERE u.code = %(unit)s AND u.valid_to IS NULL RETURNING id",
        {**data, "password_hash": security.hash_password(data["password"])})
    return await cur.fetchone()
