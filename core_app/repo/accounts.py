"""SQL for accounts, login and sessions."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from core_app import security


class LoginFailed(Exception):
    def __init__(self, locked: bool = False) -> None:
        super().__init__("locked" if locked else "failed")
        self.locked = locked


async def login(conn: AsyncConnection[Any], username: str, password: str, hours: int,
                client: str | None = None) -> tuple[str, Any]:
    """A session token and its expiry; raises LoginFailed. `conn` is the login role's (kntc_auth): the
    application role may neither read a password hash nor open a session. Call it through
    `login_committed`: a failure must be recorded even though the login is refused."""
    cur = await conn.execute("SELECT * FROM kntc.login_lookup(%s)", (username.strip().lower(),))
    row = await cur.fetchone()
    account_id = row["account_id"] if row else None
    if row and row["locked_until"] is not None:
        now = await (await conn.execute("SELECT now() AS now")).fetchone()
        if now and row["locked_until"] > now["now"]:
            await _failed(conn, account_id, client)
            raise LoginFailed(locked=True)
    ok, new_hash = security.verify_password(row["password_hash"] if row else None, password)
    if row is None or not row["is_active"]:
        await _failed(conn, account_id, client)
        raise LoginFailed()
    await conn.execute("SELECT kntc.login_result(%s, %s, %s)", (account_id, ok, new_hash))
    if not ok:
        await _failed(conn, account_id, client)
        raise LoginFailed()
    token = security.new_session_token()
    # The database bounds the lifetime (kntc.session_max_hours) and records the login.
    cur = await conn.execute("SELECT kntc.session_open(%s, %s, %s, %s) AS expires_at",
                             (account_id, token, hours, client))
    expires = await cur.fetchone()
    return token, expires["expires_at"] if expires else None


async def _failed(conn: AsyncConnection[Any], account_id: int | None, client: str | None) -> None:
    await conn.execute("SELECT kntc.record_login_failure(%s, %s)", (account_id, client))


async def login_committed(db: Any, username: str, password: str, hours: int,
                          client: str | None = None) -> tuple[str, Any]:
    failure: LoginFailed | None = None
    async with db.auth_transaction() as conn:
        try:
            return await login(conn, username, password, hours, client)
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


async def create_account(conn: AsyncConnection[Any], data: dict[str, Any]) -> dict[str, Any] | None:
    """Insert an account; row-level security decides whether the actor may (None: refused)."""
    cur = await conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
        "SELECT %(username)s, %(full_name)s, u.id, %(roles)s, %(clearance)s, %(password_hash)s "
        "FROM kntc.unit u WHERE u.code = %(unit)s AND u.valid_to IS NULL RETURNING id",
        {**data, "password_hash": security.hash_password(data["password"])})
    return await cur.fetchone()
