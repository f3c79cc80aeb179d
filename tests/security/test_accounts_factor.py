"""The second factor, tried by whoever holds only a password: a classified-cleared account without
its factor, a code used twice, a recovery code used twice, a stolen password on an account still to
enrol, and the secret read from the database.

Threat rows (runbooks/security.md): T53, T54, T55, T58.
"""

from __future__ import annotations

import secrets
import time

import httpx
import psycopg
import pyotp
import pytest
from psycopg.rows import dict_row

from core_app.security import hash_password
from tests.conftest import Officer

COMMUNE = "X00004"
PASSWORD = "Test-password-2026"
STRONG = "ba con mèo trèo cây cau 77"


def somewhere() -> dict[str, str]:
    """A client address of its own (X-Real-IP, believed from loopback as from nginx): the failures
    these tests make on purpose must not spend the budget of the suite's other logins."""
    return {"X-Real-IP": f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"}


def login(server: str, username: str, password: str, code: str | None = None) -> httpx.Response:
    body = {"username": username, "password": password} | ({"code": code} if code else {})
    return httpx.post(server + "/api/auth/login", json=body, headers=somewhere(), timeout=30)


def account(owner_conn: psycopg.Connection, roles: list[str], clearance: int, grace: bool = False) -> str:
    """An account that must hold a factor; without `grace`, one whose time to enrol is over."""
    name = f"f.{secrets.token_hex(4)}"
    owner_conn.execute(
        "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, factor_due_at) "
        "SELECT %s, 'Cán bộ mật', id, %s, %s, %s, CASE WHEN %s THEN now() + interval '3 days' END "
        "FROM kntc.unit WHERE code = %s", (name, roles, clearance, hash_password(PASSWORD), grace, COMMUNE))
    return name


def enrol(server: str, token: str, password: str) -> tuple[pyotp.TOTP, list[str], dict]:
    auth = {"Authorization": f"Bearer {token}", **somewhere()}
    begun = httpx.post(server + "/api/auth/factor/begin", headers=auth, json={"password": password})
    assert begun.status_code == 200, begun.text
    assert begun.json()["qr_svg"].startswith("<svg") and begun.json()["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(begun.json()["secret"])
    done = httpx.post(server + "/api/auth/factor/confirm", headers=auth, json={"code": totp.now()})
    assert done.status_code == 200, done.text
    return totp, done.json()["recovery_codes"], done.json()["setup"]


@pytest.mark.parametrize(("roles", "clearance"), [(["handling"], 1), (["head"], 2), (["unit_admin"], 0)])
def test_an_account_that_needs_a_factor_and_has_none_cannot_log_in(server, owner_conn, roles, clearance):
    name = account(owner_conn, roles, clearance)
    r = login(server, name, PASSWORD)
    assert r.status_code == 403 and r.json()["error"] == "second_factor_missing", r.text
    assert "token" not in r.json()
    # The database refuses such a session whoever asks (the login role's password alone).
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.session s JOIN kntc.account a ON a.id = s.account_id "
                              "WHERE a.username = %s", (name,)).fetchone()["n"] == 0


def test_a_reset_factor_is_enrolled_again_behind_a_new_initial_password(server, owner_conn, officer):
    name = account(owner_conn, ["handling"], 1)
    admin = officer(COMMUNE, ["unit_admin"], 1)
    reset = admin.post(f"/api/accounts/{name}/actions", json={"action": "reset_factor", "reason": "Mất điện thoại"})
    assert reset.status_code == 200, reset.text
    initial = reset.json()["initial_password"]
    assert login(server, name, PASSWORD).status_code == 401  # the old password went with the reset
    r = login(server, name, initial)
    assert r.status_code == 200 and r.json()["setup"]["password_change"] and r.json()["setup"]["factor_enrolment"]
    token = r.json()["token"]
    auth = {"Authorization": f"Bearer {token}", **somewhere()}
    changed = httpx.post(server + "/api/auth/password", headers=auth,
                         json={"current_password": initial, "new_password": STRONG})
    assert changed.status_code == 200 and changed.json()["setup"]["factor_enrolment"] is True
    # A new password is not enough: still nothing but the setup.
    assert httpx.get(server + "/api/cases", headers=auth).json()["error"] == "setup_required"
    wrong = httpx.post(server + "/api/auth/factor/begin", headers=auth, json={"password": "khong-dung"})
    assert wrong.status_code == 400
    totp, recovery, setup = enrol(server, token, STRONG)
    assert setup["factor_enrolment"] is False and setup["factor_enrolled"] and len(recovery) == 10
    assert httpx.get(server + "/api/cases", headers=auth).status_code == 200

    # Later logins need the code; a code is good once.
    assert login(server, name, STRONG).json()["error"] == "second_factor_required"
    assert login(server, name, STRONG, totp.now()).json()["error"] == "second_factor_wrong", "replayed"
    assert login(server, name, STRONG, "000000").status_code == 401
    following = totp.at(time.time() + 30)
    ok = login(server, name, STRONG, following)
    assert ok.status_code == 200 and ok.json()["account"]["clearance"] == 1
    assert login(server, name, STRONG, following).json()["error"] == "second_factor_wrong"
    # A recovery code, once.
    assert login(server, name, STRONG, recovery[0].upper()).status_code == 200
    assert login(server, name, STRONG, recovery[0]).status_code == 401
    # A code without the password is nothing.
    assert login(server, name, "sai mat khau nhe", totp.at(time.time() + 60)).json()["error"] == "login_failed"
    log = owner_conn.execute(
        "SELECT l.kind, l.detail FROM kntc.access_log l JOIN kntc.account a ON a.id = l.account_id "
        "WHERE a.username = %s AND l.kind IN ('factor_change', 'password_change') ORDER BY l.id", (name,)).fetchall()
    assert [e["kind"] for e in log] == ["password_change", "factor_change"]
    assert owner_conn.execute("SELECT detail->>'reason' AS why FROM kntc.access_log WHERE kind = 'account_change' "
                              "AND detail->>'target' = %s", (name,)).fetchone()["why"] == "Mất điện thoại"


def test_an_account_in_its_grace_period_logs_in_and_is_told_to_enrol(server, owner_conn):
    name = account(owner_conn, ["head"], 1, grace=True)
    r = login(server, name, PASSWORD)
    assert r.status_code == 200 and r.json()["account"] is not None
    assert r.json()["setup"]["factor_due_at"] and not r.json()["setup"]["factor_enrolment"]
    officer = Officer(server, name, PASSWORD)
    _, _, setup = enrol(server, officer.token, PASSWORD)
    assert setup["factor_enrolled"] and officer.get("/api/cases").status_code == 200
    assert login(server, name, PASSWORD).json()["error"] == "second_factor_required"


def test_the_secret_is_neither_readable_by_the_application_role_nor_stored_in_clear(server, owner_conn, pg_env):
    name = account(owner_conn, ["head"], 1, grace=True)
    officer = Officer(server, name, PASSWORD)
    totp, recovery, _ = enrol(server, officer.token, PASSWORD)
    row = owner_conn.execute("SELECT f.secret, f.recovery FROM kntc.account_factor f JOIN kntc.account a "
                             "ON a.id = f.account_id WHERE a.username = %s", (name,)).fetchone()
    assert totp.secret.encode() not in bytes(row["secret"])
    assert all(code.encode() not in bytes(h) for code in recovery for h in row["recovery"])
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (officer.token,))
        for sql in ("SELECT * FROM kntc.account_factor", "SELECT * FROM kntc.login_lookup(%s)",
                    "SELECT * FROM kntc.session_account(%s)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql, (officer.token,) if "%s" in sql else None)
    # Copied onto another account's row, the sealed secret does not open there.
    other = account(owner_conn, ["head"], 1, grace=True)
    owner_conn.execute("INSERT INTO kntc.account_factor (account_id, secret) SELECT a.id, %s FROM kntc.account a "
                       "WHERE a.username = %s", (row["secret"], other))
    owner_conn.execute("UPDATE kntc.account SET factor_enrolled_at = now() WHERE username = %s", (other,))
    try:
        r = login(server, other, PASSWORD, totp.at(time.time() + 30))
        assert r.status_code == 401 and r.json()["error"] == "second_factor_wrong"
    finally:  # a factor no key opens stops a key rotation (test_secret_rotation.py): leave none behind
        owner_conn.execute("DELETE FROM kntc.account_factor f USING kntc.account a WHERE a.id = f.account_id "
                           "AND a.username = %s", (other,))

