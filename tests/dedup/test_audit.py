"""The audit log: every change is recorded by the database, nobody may rewrite it, and
`kntc audit verify` names any row that was altered or removed."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import petition_body
from tests.dedup.conftest import id_number


def test_changes_are_recorded_with_who_and_before_after(officer, commune, owner_conn):
    unit, _ = commune()
    clerk = officer(unit, ["reception", "handling"])
    made = clerk.post("/api/cases", json=petition_body(parties=[
        {"role": "complainant", "full_name": "Ngô Thị Thu", "id_number": id_number(), "address_unit": unit}])).json()
    r = clerk.patch(f"/api/cases/{made['code']}", json={"version": made["version"], "subject": "Khiếu nại (đã sửa)",
                                                         "reason": "Sửa theo hồ sơ giấy"})
    assert r.status_code == 200, r.text
    rows = owner_conn.execute(
        "SELECT l.table_name, l.op, l.account_id, l.db_user, u.code AS unit, l.before ->> 'subject' AS old, "
        "l.after ->> 'subject' AS new FROM kntc.audit_log l LEFT JOIN kntc.unit u ON u.id = l.unit_id "
        "WHERE l.row_key = %s ORDER BY l.id", (made["id"],)).fetchall()
    assert [r["op"] for r in rows][:1] == ["INSERT"]
    edit = next(r for r in rows if r["old"] == "Khiếu nại quyết định thu hồi đất")
    assert edit["new"] == "Khiếu nại (đã sửa)" and edit["account_id"] == clerk.account["account_id"]
    assert edit["db_user"] == "kntc_app" and edit["unit"] == unit
    tables = {r["table_name"] for r in owner_conn.execute(
        "SELECT DISTINCT table_name FROM kntc.audit_log WHERE account_id = %s", (clerk.account["account_id"],))}
    assert {"case_file", "party", "petition", "case_deadline"} <= tables
    secret = owner_conn.execute("SELECT count(*) AS n FROM kntc.audit_log WHERE table_name = 'account' "
                                "AND (after ? 'password_hash' OR before ? 'password_hash')").fetchone()
    assert secret["n"] == 0


def test_nobody_but_a_superuser_can_rewrite_the_log(pg_env, owner_conn):
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("DELETE FROM kntc.audit_log")
    for sql in ("UPDATE kntc.audit_log SET db_user = 'x' WHERE id = 1", "DELETE FROM kntc.audit_log WHERE id = 1",
                "TRUNCATE kntc.audit_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            owner_conn.execute(sql)


def _verify(kntc) -> tuple[int, str]:
    res = kntc("audit", "verify")
    return res.returncode, res.stdout + res.stderr


def test_verify_names_an_edited_row_and_a_deleted_row(officer, commune, cluster, owner_conn, kntc):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    for i in range(3):
        r = clerk.post("/api/cases", json=petition_body(subject=f"Kiến nghị số {i} về vệ sinh môi trường",
                       parties=[{"role": "complainant", "full_name": "Tô Văn Lực", "address_unit": unit}]))
        assert r.status_code == 201
    code, out = _verify(kntc)
    assert code == 0 and "chain intact" in out, out
    # The clerk's unit writes to a chain of its own (one per group of units, not one for the country).
    chain = owner_conn.execute("SELECT kntc.audit_chain_of(id) AS c FROM kntc.unit WHERE code = %s",
                               (unit,)).fetchone()["c"]
    head = owner_conn.execute("SELECT max(id) AS n FROM kntc.audit_log WHERE chain = %s", (chain,)).fetchone()["n"]
    edited, deleted = head - 5, head - 2
    row = f"chain = {chain} AND id"
    saved = owner_conn.execute(f"SELECT * FROM kntc.audit_log WHERE {row} = %s", (deleted,)).fetchone()
    original = owner_conn.execute(f"SELECT after::text AS a FROM kntc.audit_log WHERE {row} = %s",
                                  (edited,)).fetchone()["a"]

    def tamper(sql: str) -> None:
        cluster.superuser_psql("BEGIN; ALTER TABLE kntc.audit_log DISABLE TRIGGER audit_log_protect; "
                               f"{sql}; ALTER TABLE kntc.audit_log ENABLE TRIGGER audit_log_protect; COMMIT;")

    try:
        tamper(f"UPDATE kntc.audit_log SET after = jsonb_set(after, '{{subject}}', '\"sửa trộm\"') WHERE {row} = {edited}")
        code, out = _verify(kntc)
        assert code == 1, out
        assert f"altered chain {chain} id {edited}:" in out and f"first: chain {chain} id {edited}:" in out

        tamper(f"DELETE FROM kntc.audit_log WHERE {row} = {deleted}")
        code, out = _verify(kntc)
        assert code == 1
        assert f"missing chain {chain} id {deleted} removed" in out and f"altered chain {chain} id {edited}:" in out
    finally:
        # Put the log back as it was, so that the chain is whole again for later tests.
        tamper(f"UPDATE kntc.audit_log SET after = '{_sql(original)}'::jsonb WHERE {row} = {edited}")
        tamper(f"INSERT INTO kntc.audit_log SELECT * FROM jsonb_populate_record(NULL::kntc.audit_log, "
               f"'{_sql(_json(saved))}'::jsonb) ON CONFLICT (chain, id) DO NOTHING")
    code, out = _verify(kntc)
    assert code == 0, out


def _sql(text: str) -> str:
    return text.replace("'", "''")


def _json(row: dict) -> str:
    import json

    def enc(v):
        if isinstance(v, bytes | memoryview):
            return "\\x" + bytes(v).hex()
        if hasattr(v, "isoformat"):
            return v.isoformat()
        return v

    return json.dumps({k: enc(v) for k, v in row.items()}, ensure_ascii=False)
