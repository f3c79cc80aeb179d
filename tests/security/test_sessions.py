"""Sessions: what the application role's password alone may do (threat model: someone holding the
application role's password, a compromised app host).

It opens no session and reads no password hash: only the login role (kntc_auth) may, and even it
cannot open a session longer than the database allows. Every login, failed login and logout is
recorded with the account, the time and the client's address.

Threat rows (runbooks/security.md): T14, T15, T16, T17, T19a.
"""

from __future__ import annotations

import secrets

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import TEST_PASSWORD


def _account_id(owner_conn: psycopg.Connection, username: str) -> int:
    return owner_conn.execute("SELECT id FROM kntc.account WHERE username = %s", (username,)).fetchone()["id"]


def _acting_account(conn: psycopg.Connection, token: str) -> int | None:
    with conn.transaction():
        conn.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
        return conn.execute("SELECT (kntc.actor()).account_id AS a").fetchone()["a"]


def test_the_application_role_cannot_open_a_session_for_another_officer(pg_env, owner_conn, make_account):
    victim = _account_id(owner_conn, make_account("T01", ["head"], clearance=2))
    token = secrets.token_urlsafe(32)
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        # The call as it was (account, token, hours), with the client's address, and with the purpose.
        for sql, args in (("SELECT kntc.session_open(%s, %s, %s)", (victim, token, 8)),
                          ("SELECT kntc.session_open(%s, %s, %s, %s)", (victim, token, 8, "10.0.0.1")),
                          ("SELECT kntc.session_open(%s, %s, %s, %s, 'full')", (victim, token, 8, "10.0.0.1"))):
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction)):
                app.execute(sql, args)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("INSERT INTO kntc.session (token_hash, account_id, expires_at) "
                        "VALUES (sha256(%s::bytea), %s, now() + interval '1 hour')", (token.encode(), victim))
        assert _acting_account(app, token) is None


def test_the_application_role_cannot_read_a_password_hash(pg_env, make_account):
    username = make_account("X00004", ["handling"])
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM kntc.login_lookup(%s)", (username,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT password_hash FROM kntc.account WHERE username = %s", (username,))


def test_the_login_role_cannot_open_a_session_longer_than_the_database_allows(pg_env, owner_conn, make_account):
    account = _account_id(owner_conn, make_account("X00004", ["reception"]))
    token = secrets.token_urlsafe(32)
    with psycopg.connect(pg_env["KNTC_AUTH_DATABASE_URL"], row_factory=dict_row, autocommit=True) as auth:
        row = auth.execute("SELECT kntc.session_open(%s, %s, %s, %s, 'full') - now() AS lasts",
                           (account, token, 10_000, "127.0.0.1")).fetchone()
        assert row["lasts"].total_seconds() <= 12 * 3600
        # Nor around the function: the login role has no privilege on any table.
        for sql in ("SELECT * FROM kntc.session", "SELECT id FROM kntc.case_file",
                    "UPDATE kntc.session SET expires_at = expires_at + interval '1 year'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                auth.execute(sql)
    # Not even the owner can store a longer one: the bound is a constraint on the table.
    with pytest.raises(psycopg.errors.CheckViolation):
        owner_conn.execute("UPDATE kntc.session SET expires_at = created_at + interval '30 days' "
                           "WHERE account_id = %s", (account,))
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        assert _acting_account(app, token) == account


def test_every_login_failed_login_and_logout_is_recorded(server, owner_conn, make_account):
    username = make_account("X00008", ["reception"])
    account = _account_id(owner_conn, username)
    with httpx.Client(base_url=server, timeout=30) as client:
        bad = client.post("/api/auth/login", json={"username": username, "password": "Wrong-password-1"})
        assert bad.status_code == 401
        good = client.post("/api/auth/login", json={"username": username, "password": TEST_PASSWORD})
        assert good.status_code == 200
        out = client.post("/api/auth/logout", headers={"Authorization": f"Bearer {good.json()['token']}"})
        assert out.status_code == 200
    rows = owner_conn.execute("SELECT kind, client, at FROM kntc.access_log WHERE account_id = %s ORDER BY id",
                              (account,)).fetchall()
    assert [r["kind"] for r in rows] == ["login_failed", "login", "logout"]
    assert rows[0]["client"] == "127.0.0.1" and rows[1]["client"] == "127.0.0.1"
    # ... and the records are in the audit chain, not only in a table the owner could edit.
    chained = owner_conn.execute(
        "SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'access_log' AND op = 'INSERT' "
        "AND (after ->> 'account_id')::integer = %s", (account,)).fetchone()["n"]
    assert chained == 3


def test_a_token_left_idle_is_refused_to_the_application_role_even_without_the_gate(
        pg_env, owner_conn, server, make_account):
    """Holding kntc_app's password and a token its officer stopped using: the database itself ends it,
    and asking session_begin for a longer idle limit does not revive it."""
    username = make_account("X00004", ["reception"], clearance=1)
    r = httpx.post(server + "/api/auth/login", json={"username": username, "password": TEST_PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        assert _acting_account(app, token) == _account_id(owner_conn, username)
        owner_conn.execute("UPDATE kntc.session SET last_seen_at = now() - interval '40 minutes' "
                           "WHERE token_hash = sha256(convert_to(%s, 'UTF8'))", (token,))
        assert _acting_account(app, token) is None
        state = app.execute("SELECT kntc.session_begin(%s, %s) AS s", (token, 10**6)).fetchone()["s"]
        assert state == "idle"
        assert _acting_account(app, token) is None


@pytest.mark.parametrize("case", ["live", "idle", "expired", "setup", "deactivated", "unknown"])
def test_resuming_a_session_leaves_an_officer_for_row_level_security_only_when_it_is_live(pg_env, owner_conn,
                                                                                          make_account, case):
    """The session statement's one lookup (kntc.session_resume) judges each state, and seals the officer
    for the transaction's policies only for a live session; the release before's form (set_config,
    kntc.session_begin, then kntc.actor()) answers the same."""
    account = _account_id(owner_conn, make_account("X00004", ["handling"], clearance=1))
    token = secrets.token_urlsafe(32)
    if case != "unknown":
        owner_conn.execute(
            "INSERT INTO kntc.session (token_hash, account_id, expires_at, last_seen_at, purpose) "
            "VALUES (sha256(convert_to(%s, 'UTF8')), %s, now() + %s::interval, now() - %s::interval, %s)",
            (token, account, "-1 minute" if case == "expired" else "1 hour",
             "40 minutes" if case == "idle" else "0 seconds", "setup" if case == "setup" else "full"))
    if case == "deactivated":
        owner_conn.execute("UPDATE kntc.account SET is_active = false WHERE id = %s", (account,))
    expected = {"deactivated": "expired", "unknown": "expired"}.get(case, case)
    officer = account if case == "live" else None
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        with app.transaction():
            row = app.execute("SELECT state, (who).account_id AS a, (who).clearance AS c "
                              "FROM kntc.session_resume(%s, 1800)", (token,)).fetchone()
            cached = app.execute("SELECT current_setting('kntc.actor_cache', true) <> '' AS set").fetchone()["set"]
            visible = app.execute("SELECT (kntc.actor()).account_id AS a").fetchone()["a"]
        with app.transaction():
            app.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
            before = app.execute("SELECT kntc.session_begin(%s, 1800) AS state", (token,)).fetchone()["state"]
            before_visible = app.execute("SELECT (kntc.actor()).account_id AS a").fetchone()["a"]
    assert (row["state"], before) == (expected, expected)
    assert (row["a"], visible, before_visible, bool(cached)) == (officer, officer, officer, case == "live")
    if case == "live":
        assert row["c"] == 1
