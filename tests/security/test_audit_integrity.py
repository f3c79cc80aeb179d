"""Audit integrity against the database owner acting alone (threat model: a database owner acting
alone), and the record of what officers read and take away.

The owner owns the audited tables: it can switch their triggers off, edit the log with its
protection off, replace the functions that hash it and recompute every hash, or cut the newest rows.
`kntc audit verify` recomputes the chains itself, checks triggers and functions against the code,
and compares the chains with heads signed earlier by a key the database never held.

Threat rows (runbooks/security.md): T20, T21, T22, T23, T24.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.conftest import petition_body
from tests.dedup.conftest import id_number

BIN = Path(sys.executable).parent


@pytest.fixture
def kntc(pg_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "kntc"), *map(str, args)], env={**os.environ, **pg_env},
                              capture_output=True, text=True, timeout=300)

    return run


@pytest.fixture(scope="module")
def communes(owner_conn: psycopg.Connection) -> Iterator[str]:
    """Communes of their own for these tests (another order than the duplicate tests' communes)."""
    rows = owner_conn.execute("SELECT code FROM kntc.unit WHERE code ~ '^X[0-9]+$' AND valid_to IS NULL "
                              "ORDER BY md5(code || 'audit') LIMIT 50").fetchall()
    return iter([r["code"] for r in rows])


@pytest.fixture
def anchors(tmp_path: Path, kntc) -> Iterator[Path]:
    """A backup host's key pair and anchor folder (the private key never goes near the database)."""
    folder = tmp_path / "anchors"
    folder.mkdir()
    res = kntc("audit", "keygen", "--key", tmp_path / "anchor.key", "--public-key", folder / "anchor-key.pub")
    assert res.returncode == 0, res.stderr
    yield folder


def _anchor(kntc, folder: Path) -> None:
    res = kntc("audit", "anchor", "--key", folder.parent / "anchor.key", "--dir", folder)
    assert res.returncode == 0, res.stdout + res.stderr


def _verify(kntc, folder: Path | None = None) -> tuple[int, str]:
    res = kntc("audit", "verify", *(("--anchors", folder) if folder else ()))
    return res.returncode, res.stdout + res.stderr


def _chain_of(owner_conn: psycopg.Connection, unit: str) -> int:
    return owner_conn.execute("SELECT kntc.audit_chain_of(id) AS c FROM kntc.unit WHERE code = %s",
                              (unit,)).fetchone()["c"]


def _some_cases(officer, unit: str, n: int = 2) -> list[dict]:
    clerk = officer(unit, ["reception", "handling"])
    made = []
    for i in range(n):
        r = clerk.post("/api/cases", json=petition_body(subject=f"Kiến nghị số {i} về chiếu sáng công cộng", parties=[
            {"role": "complainant", "full_name": "Đàm Văn Sáng", "id_number": id_number(), "address_unit": unit}]))
        assert r.status_code == 201, r.text
        made.append(r.json())
    return made


def test_owner_disabling_an_audit_trigger_to_change_a_case_unrecorded_is_detected(officer, communes, owner_conn,
                                                                                   kntc):
    unit = next(communes)
    case = _some_cases(officer, unit, 1)[0]
    assert _verify(kntc)[0] == 0
    subject = owner_conn.execute("SELECT subject FROM kntc.case_file WHERE id = %s", (case["id"],)).fetchone()["subject"]

    def unrecorded(new_subject: str, enable_after: bool = True) -> None:
        with owner_conn.transaction():
            owner_conn.execute("ALTER TABLE kntc.case_file DISABLE TRIGGER audit_upd")
            owner_conn.execute("UPDATE kntc.case_file SET subject = %s WHERE id = %s", (new_subject, case["id"]))
            if enable_after:
                owner_conn.execute("ALTER TABLE kntc.case_file ENABLE TRIGGER audit_upd")

    try:
        # Switched off, written, switched on again: the row no longer matches its history.
        unrecorded("Kiến nghị đã bị sửa lén")
        code, out = _verify(kntc)
        assert code == 1, out
        assert f"kntc.case_file row {case['id']}: changed without an audit record" in out
        # Left switched off: the trigger itself is named.
        unrecorded("Kiến nghị đã bị sửa lén lần hai", enable_after=False)
        code, out = _verify(kntc)
        assert code == 1 and "audit_upd on kntc.case_file is disabled" in out, out
    finally:
        unrecorded(subject)
    code, out = _verify(kntc)
    assert code == 0, out


COLUMNS = ("chain", "id", "at", "account_id", "db_user", "unit_id", "table_name", "op", "row_key", "before", "after",
           "prev_hash", "hash")


def _save_chain(owner_conn: psycopg.Connection, chain: int, from_id: int) -> list[dict]:
    # The images as text: the exact bytes that were hashed.
    cols = ", ".join(f"{c}::text AS {c}" if c in ("before", "after") else c for c in COLUMNS)
    return owner_conn.execute(f"SELECT {cols} FROM kntc.audit_log WHERE chain = %s AND id >= %s ORDER BY id",
                              (chain, from_id)).fetchall()


def _restore_chain(owner_conn: psycopg.Connection, chain: int, saved: list[dict]) -> None:
    """Put the rows back exactly as they were (the owner, with the log's protection off)."""
    values = ", ".join("%s::jsonb" if c in ("before", "after") else "%s" for c in COLUMNS)
    with owner_conn.transaction():
        owner_conn.execute("ALTER TABLE kntc.audit_log DISABLE TRIGGER audit_log_protect")
        owner_conn.execute("DELETE FROM kntc.audit_log WHERE chain = %s AND id >= %s", (chain, saved[0]["id"]))
        with owner_conn.cursor() as cur:
            cur.executemany(f"INSERT INTO kntc.audit_log ({', '.join(COLUMNS)}) VALUES ({values})",
                            [tuple(r[c] for c in COLUMNS) for r in saved])
        owner_conn.execute("ALTER TABLE kntc.audit_log ENABLE TRIGGER audit_log_protect")


def test_owner_rewriting_history_and_recomputing_the_chain_with_a_replaced_hash_function_is_caught(
        officer, communes, owner_conn, kntc, anchors):
    unit = next(communes)
    case = _some_cases(officer, unit, 2)[0]
    chain = _chain_of(owner_conn, unit)
    _anchor(kntc, anchors)
    code, out = _verify(kntc, anchors)
    assert code == 0, out
    # The row to rewrite: the case's first image (its insert), in the middle of the chain.
    target = owner_conn.execute("SELECT id FROM kntc.audit_log WHERE chain = %s AND table_name = 'case_file' "
                                "AND row_key = %s AND op = 'INSERT'", (chain, case["id"])).fetchone()["id"]
    saved = _save_chain(owner_conn, chain, target)
    original = [owner_conn.execute("SELECT pg_get_functiondef(%s::regprocedure) AS d", (f,)).fetchone()["d"]
                for f in ("kntc.audit_text(bigint, timestamptz, integer, text, integer, text, text, text, jsonb, jsonb)",
                          "kntc.audit_canonical(kntc.audit_log)")]
    try:
        with owner_conn.transaction():
            # A canonical form that leaves out the content: any edit of it then "verifies".
            owner_conn.execute(
                "CREATE OR REPLACE FUNCTION kntc.audit_canonical(a kntc.audit_log) RETURNS text "
                "LANGUAGE sql IMMUTABLE AS $$ SELECT concat_ws(E'\\x1f', a.id::text, a.table_name, a.op, a.row_key) $$")
            owner_conn.execute("ALTER TABLE kntc.audit_log DISABLE TRIGGER audit_log_protect")
            owner_conn.execute("UPDATE kntc.audit_log SET after = jsonb_set(after, '{subject}', '\"Đơn đã bị tráo\"') "
                               "WHERE chain = %s AND id = %s", (chain, target))
            owner_conn.execute("""
                DO $$
                DECLARE r kntc.audit_log; prev bytea;
                BEGIN
                    FOR r IN SELECT * FROM kntc.audit_log WHERE chain = %(chain)s AND id >= %(id)s ORDER BY id LOOP
                        prev := coalesce(prev, r.prev_hash);
                        UPDATE kntc.audit_log SET prev_hash = prev,
                               hash = sha256(prev || convert_to(kntc.audit_canonical(r), 'UTF8'))
                         WHERE chain = r.chain AND id = r.id RETURNING hash INTO prev;
                    END LOOP;
                END $$""".replace("%(chain)s", str(chain)).replace("%(id)s", str(target)))
            owner_conn.execute("ALTER TABLE kntc.audit_log ENABLE TRIGGER audit_log_protect")
        code, out = _verify(kntc, anchors)
        assert code == 1, out
        assert f"altered chain {chain} id {target}:" in out
        assert "kntc.audit_canonical() was replaced" in out
        assert f"chain {chain} id {saved[-1]['id']}: hash differs from the one signed in kntc-anchor-" in out
    finally:
        for definition in original:
            owner_conn.execute(definition)
        _restore_chain(owner_conn, chain, saved)
    code, out = _verify(kntc, anchors)
    assert code == 0, out


def test_owner_deleting_the_newest_rows_of_the_log_is_caught_by_the_anchor(officer, communes, owner_conn, kntc,
                                                                          anchors):
    unit = next(communes)
    _some_cases(officer, unit, 1)
    chain = _chain_of(owner_conn, unit)
    _anchor(kntc, anchors)
    head = owner_conn.execute("SELECT max(id) AS n FROM kntc.audit_log WHERE chain = %s", (chain,)).fetchone()["n"]
    saved = _save_chain(owner_conn, chain, head - 1)
    try:
        with owner_conn.transaction():
            owner_conn.execute("ALTER TABLE kntc.audit_log DISABLE TRIGGER audit_log_protect")
            owner_conn.execute("DELETE FROM kntc.audit_log WHERE chain = %s AND id >= %s", (chain, head - 1))
            owner_conn.execute("ALTER TABLE kntc.audit_log ENABLE TRIGGER audit_log_protect")
        code, out = _verify(kntc, anchors)
        assert code == 1, out
        assert f"chain {chain} id {head}, signed in kntc-anchor-" in out and "removed from the end" in out
    finally:
        _restore_chain(owner_conn, chain, saved)
    code, out = _verify(kntc, anchors)
    assert code == 0, out


def test_a_forged_anchor_is_refused(kntc, anchors):
    _anchor(kntc, anchors)
    forged = next(anchors.glob("kntc-anchor-*.json"))
    forged.write_text(forged.read_text().replace('"id": ', '"id": 1', 1))
    code, out = _verify(kntc, anchors)
    assert code == 1 and "signature does not match" in out, out


def test_the_api_case_file_records_a_protected_identity_read_and_nothing_for_a_plain_case(
        officer, owner_conn, communes):
    """Reading a case file through the API records each read of a protected identity (the case not
    classified), once per read, and nothing for a case with nothing to protect."""
    unit = next(communes)
    clerk = officer(unit, ["reception", "handling"])
    plain = clerk.post("/api/cases", json=petition_body()).json()
    protected = clerk.post("/api/cases", json=petition_body(
        kind="denunciation", denouncer_confidential=True,
        parties=[{"role": "denouncer", "full_name": "Người Tố Cáo Kín", "id_number": id_number(),
                  "address_unit": unit}])).json()

    def reads(case_id: str) -> list[str]:
        return [r["kind"] for r in owner_conn.execute(
            "SELECT kind FROM kntc.access_log WHERE account_id = %s AND case_id = %s AND kind LIKE '%%_read' "
            "ORDER BY id", (clerk.account["account_id"], case_id)).fetchall()]

    before = reads(protected["id"])
    for _ in range(2):
        got = clerk.get(f"/api/cases/{protected['code']}")
        assert got.status_code == 200 and "Người Tố Cáo Kín" in got.text
        assert clerk.get(f"/api/cases/{plain['code']}").status_code == 200
    assert reads(protected["id"]) == [*before, "identity_read", "identity_read"]
    assert reads(plain["id"]) == []


def test_classified_reads_protected_identities_exports_downloads_and_declassification_are_recorded(
        officer, server, owner_conn, pg_env, communes):
    unit = next(communes)
    head = officer(unit, ["reception", "handling", "head"], clearance=1)
    made = head.post("/api/cases", json=petition_body(
        kind="denunciation", classification=1, denouncer_confidential=True,
        parties=[{"role": "denouncer", "full_name": "Người Tố Cáo Kín", "id_number": id_number(),
                  "address_unit": unit}])).json()
    assert head.get(f"/api/cases/{made['code']}").status_code == 200
    up = head.post(f"/api/cases/{made['code']}/attachments", files={"file": ("bien-ban.pdf", b"%PDF-1.4 test", "application/pdf")})
    assert up.status_code == 201, up.text
    assert head.get(f"/api/cases/{made['code']}/attachments/{up.json()['id']}").status_code == 200
    r = head.patch(f"/api/cases/{made['code']}", json={"version": made["version"], "classification": 0,
                                                       "reason": "Giải mật theo quyết định của thủ trưởng"})
    assert r.status_code == 200, r.text

    from tests.web.conftest import WebUser

    web = WebUser(server)
    assert web.login(head.username).status_code == 303
    export = web.get("/app/cases?scope=unit&format=csv")
    assert export.status_code == 200 and made["code"] in export.text

    rows = owner_conn.execute("SELECT kind, case_id::text AS case_id, detail FROM kntc.access_log "
                              "WHERE account_id = %s ORDER BY id", (head.account["account_id"],)).fetchall()
    kinds = [r["kind"] for r in rows]
    on_case = {r["kind"] for r in rows if r["case_id"] == made["id"]}
    assert {"case_read", "identity_read", "attachment_download", "declassify"} <= on_case, kinds
    exports = [r["detail"] for r in rows if r["kind"] == "export"]
    assert exports == [{"list": "ho-so", "rows": exports[0]["rows"]}] and exports[0]["rows"] >= 1
    # Nobody writes such a record without a live session (the officer comes from it, not from the caller).
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row, autocommit=True) as app, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT kntc.record_access('export', NULL, '{}')")
