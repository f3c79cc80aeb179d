"""Attacks by a unit administrator on the limits of their power: granting head, unit_admin or
sysadmin, or a clearance above their own, through the API or as the application role.

Threat rows (runbooks/security.md): T27.
"""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg.rows import dict_row

PROVINCE, COMMUNE = "T01", "X00004"


def account(unit: str, roles: list[str], clearance: int = 0) -> dict:
    return {"username": f"p.{secrets.token_hex(4)}", "full_name": "Cán bộ thử quyền", "unit": unit, "roles": roles,
            "clearance": clearance}


def test_unit_admin_cannot_create_an_account_above_their_own_level(officer, owner_conn):
    admin = officer(COMMUNE, ["unit_admin"], 1)
    for roles, clearance in ((["head"], 0), (["unit_admin"], 0), (["reception", "head"], 0), (["sysadmin"], 0),
                             (["reception"], 2)):
        body = account(COMMUNE, roles, clearance)
        r = admin.post("/api/accounts", json=body)
        assert r.status_code == 403, (roles, clearance, r.text)
        assert r.json()["message"] and r.json()["message_en"]
        assert owner_conn.execute("SELECT 1 FROM kntc.account WHERE username = %s",
                                  (body["username"],)).fetchone() is None
    # What an administrator may do: officers in their unit and below, heads and administrators below.
    province_admin = officer(PROVINCE, ["unit_admin"], 1)
    for unit, roles in ((PROVINCE, ["reception", "handling"]), (COMMUNE, ["head"]), (COMMUNE, ["unit_admin"])):
        r = province_admin.post("/api/accounts", json=account(unit, roles, 1))
        assert r.status_code == 201, (unit, roles, r.text)
    assert province_admin.post("/api/accounts", json=account(PROVINCE, ["head"], 1)).status_code == 403


def test_unit_admin_cannot_grant_head_as_the_application_role(officer, make_account, owner_conn, pg_env):
    admin = officer(COMMUNE, ["unit_admin"], 1)
    clerk = make_account(COMMUNE, ["reception"])
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (admin.token,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash) "
                         "SELECT 'p.sneaky', 'Thủ trưởng giả', id, '{head}', 0, 'x' FROM kntc.unit WHERE code = %s",
                         (COMMUNE,))
        # Promoting a colleague, or themselves: no UPDATE at all, and the one door refuses.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE kntc.account SET roles = '{reception,head}' WHERE username = %s", (clerk,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE kntc.account SET roles = '{unit_admin,sysadmin}', clearance = 2 "
                         "WHERE username = %s", (admin.username,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT kntc.account_admin(%s, 'set_roles', 'thăng chức', '{\"roles\": [\"head\"]}')",
                         (clerk,))
        # Their own account is not one they manage: the same answer as an account that does not exist.
        with pytest.raises(psycopg.errors.NoDataFound):
            conn.execute("SELECT kntc.account_admin(%s, 'set_clearance', 'tự nâng mức', '{\"clearance\": 2}')",
                         (admin.username,))
    rows = owner_conn.execute("SELECT username, roles, clearance FROM kntc.account WHERE username IN (%s, %s)",
                              (clerk, admin.username)).fetchall()
    assert sorted((r["roles"], r["clearance"]) for r in rows) == [(["reception"], 0), (["unit_admin"], 1)]


def test_an_officer_reads_the_accounts_of_their_area_and_their_own_and_no_other(pg_env, owner_conn, make_account):
    """The accounts row-level security lets an officer read, as the application role: their own and those
    of units under their area's unit, for a commune officer, a province head and a national officer."""
    def session(username: str) -> str:
        token = secrets.token_urlsafe(32)
        owner_conn.execute("INSERT INTO kntc.session (token_hash, account_id, expires_at) SELECT "
                           "sha256(convert_to(%s, 'UTF8')), id, now() + interval '1 hour' FROM kntc.account "
                           "WHERE username = %s", (token, username))
        return token

    made = {unit: make_account(unit, ["handling"]) for unit in ("X00004", "T01", "LT01", "VN")}
    readers = {"X00004": make_account("X00004", ["handling"]), "T01": make_account("T01", ["head"]),
               "VN": make_account("VN", ["head"])}
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app:
        for unit, reader in readers.items():
            expected = {r["username"] for r in owner_conn.execute(
                "SELECT a.username FROM kntc.account a JOIN kntc.unit u ON u.id = a.unit_id "
                "WHERE u.path <@ (SELECT s.path FROM kntc.unit r JOIN kntc.unit s ON s.id = kntc.scope_unit_id(r) "
                "                 WHERE r.code = %s) OR a.username = %s", (unit, reader))}
            with app.transaction():
                app.execute("SELECT state FROM kntc.session_resume(%s, 1800)", (session(reader),))
                seen = {r["username"] for r in app.execute("SELECT username FROM kntc.account")}
            assert seen == expected and reader in seen, unit
            hidden = {"X00004": {"T01", "LT01", "VN"}, "T01": {"LT01", "VN"}, "VN": set()}[unit]
            assert not seen & {made[u] for u in hidden}, unit
            if unit == "VN":
                assert set(made.values()) <= seen  # the national officer's area is every unit
