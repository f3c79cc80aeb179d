"""Attacks on a case's classification: an officer who is not the head lowers it, through the API or
straight in the database as the application role.

Threat rows (runbooks/security.md): T25, T26.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import petition_body

UNIT = "X00004"


def secret_case(officer) -> str:
    clerk = officer(UNIT, ["reception"], 2)
    r = clerk.post("/api/cases", json=petition_body(classification=2, subject="Tố cáo sai phạm trong quản lý đất công"))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def classification(owner_conn: psycopg.Connection, code: str) -> int:
    return owner_conn.execute("SELECT classification FROM kntc.case_file WHERE code = %s", (code,)).fetchone()[
        "classification"]


def test_officer_who_is_not_the_head_cannot_declassify_a_case_through_the_api(officer, owner_conn):
    code = secret_case(officer)
    handler = officer(UNIT, ["handling", "resolution"], 2)
    r = handler.patch(f"/api/cases/{code}", json={"version": 1, "classification": 0, "reason": "Không còn mật"})
    assert r.status_code == 403, r.text
    assert r.json()["message"] and "head" in r.json()["message_en"]
    assert classification(owner_conn, code) == 2


def test_officer_who_is_not_the_head_cannot_declassify_a_case_as_the_application_role(officer, owner_conn, pg_env):
    code = secret_case(officer)
    handler = officer(UNIT, ["handling", "unit_admin"], 2)
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (handler.token,))
        conn.execute("SELECT set_config('kntc.change_reason', 'hết thời hạn bảo vệ bí mật', false)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE kntc.case_file SET classification = 0 WHERE code = %s", (code,))
    assert classification(owner_conn, code) == 2


def test_head_of_another_unit_or_without_a_reason_cannot_declassify(officer, owner_conn, pg_env):
    code = secret_case(officer)
    province_head = officer("T01", ["head"], 2)  # the province: may read the case, does not hold it
    own_head = officer(UNIT, ["head"], 2)
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as conn:
        def lower(who, reason: str) -> int:
            with conn.transaction():
                conn.execute("SELECT set_config('kntc.session_token', %s, true)", (who.token,))
                conn.execute("SELECT set_config('kntc.change_reason', %s, true)", (reason,))
                return conn.execute("UPDATE kntc.case_file SET classification = 0 WHERE code = %s", (code,)).rowcount

        assert lower(province_head, "đã giải mật") == 0  # the province reads the case; it does not hold it
        with pytest.raises(psycopg.errors.CheckViolation):
            lower(own_head, "")
    assert classification(owner_conn, code) == 2


def test_the_head_declassifies_with_a_reason_on_the_timeline_and_in_the_audit_log(officer, owner_conn):
    code = secret_case(officer)
    head = officer(UNIT, ["head"], 2)
    r = head.patch(f"/api/cases/{code}", json={"version": 1, "classification": 1,
                                               "reason": "Quyết định giảm độ mật số 12/QĐ"})
    assert r.status_code == 200, r.text
    assert classification(owner_conn, code) == 1
    events = head.get(f"/api/cases/{code}").json()["timeline"]
    declassify = [e for e in events if e["action"] == "declassify"]
    assert len(declassify) == 1 and declassify[0]["note"] == "Quyết định giảm độ mật số 12/QĐ"
    audit = owner_conn.execute(
        "SELECT l.before ->> 'classification' AS was, l.after ->> 'classification' AS now FROM kntc.audit_log l "
        "JOIN kntc.case_file c ON l.row_key = c.id::text WHERE c.code = %s AND l.table_name = 'case_file' "
        "AND l.op = 'UPDATE' ORDER BY l.id", (code,)).fetchall()
    assert ("2", "1") in [(a["was"], a["now"]) for a in audit]
