"""`kntc import FILE.csv`: all rows or none, rejected rows reported by line, legacy units mapped."""

from __future__ import annotations

import csv
import io
import secrets

from tests.dedup.conftest import id_number

HEADER = ["source_ref", "received_on", "unit", "kind", "channel", "status", "subject", "content", "respondent",
          "party_name", "party_id_number", "party_address", "party_address_unit", "party_role", "accepted_on",
          "resolved_on", "closed_on", "classification"]


def write(tmp_path, rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADER)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    path = tmp_path / f"legacy-{secrets.token_hex(3)}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    return str(path)


def row(ref: str, **over: str) -> dict:
    base = {"source_ref": ref, "received_on": "2019-06-03", "unit": "LX00004", "kind": "KN", "channel": "letter",
            "status": "closed", "subject": "Khiếu nại quyết định thu hồi đất năm 2019",
            "content": "Nội dung đơn từ hệ thống cũ", "respondent": "UBND phường Trúc Bạch",
            "party_name": "Đặng Văn Hậu", "party_id_number": "", "party_address": "Ngõ 5, Trúc Bạch",
            "party_address_unit": "LX00004", "party_role": "", "accepted_on": "2019-06-10",
            "resolved_on": "2019-07-15", "closed_on": "2019-07-30", "classification": "0"}
    base.update(over)
    return base


def counts(owner_conn, refs: list[str]) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM kntc.legacy_import WHERE source_ref = ANY (%s)",
                              (refs,)).fetchone()["n"]


def test_malformed_file_imports_nothing_and_names_every_bad_line(tmp_path, kntc, owner_conn):
    tag = secrets.token_hex(3)
    refs = [f"OLD-{tag}-{i}" for i in range(6)]
    before = owner_conn.execute("SELECT count(*) AS n FROM kntc.case_file").fetchone()["n"]
    path = write(tmp_path, [
        row(refs[0]),
        row(refs[1], received_on="2017-12-01"),
        row(refs[2], unit="LX99999"),
        row(refs[3], party_id_number="12345"),
        row(refs[4], kind="dispute"),
        row(refs[0], subject="Dòng lặp mã cũ"),
    ])
    res = kntc("import", path)
    assert res.returncode == 1
    out = res.stderr
    for line, reason in ((3, "before 2018-03-15"), (4, "unknown unit 'LX99999'"), (5, "must be 12 digits"),
                         (6, "kind 'dispute'"), (7, "repeats line 2")):
        assert any(x.startswith(f"dòng / line {line}: ") and reason in x for x in out.splitlines()), (line, out)
    assert "5 row(s) rejected, nothing imported" in out
    assert counts(owner_conn, refs) == 0
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.case_file").fetchone()["n"] == before

    bad_header = tmp_path / "no-columns.csv"
    bad_header.write_text("ma,ngay\n1,2019-01-01\n", encoding="utf-8")
    res = kntc("import", str(bad_header))
    assert res.returncode == 1 and "missing columns: source_ref" in res.stderr


def test_good_file_maps_legacy_units_and_joins_duplicates(tmp_path, kntc, owner_conn):
    tag = secrets.token_hex(3)
    idn = id_number()
    legacy = {r["legacy"]: r for r in owner_conn.execute(
        "SELECT l.code AS legacy, l.admin_code, s.code AS current FROM kntc.unit l "
        "JOIN kntc.unit s ON s.id = l.successor_id WHERE l.code IN ('LX00004', 'LX00001')").fetchall()}
    district = owner_conn.execute(
        "SELECT l.code AS legacy, s.code AS current FROM kntc.unit l JOIN kntc.unit s ON s.id = l.successor_id "
        "WHERE l.code LIKE 'LH%%' ORDER BY l.code LIMIT 1").fetchone()
    refs = [f"OLD-{tag}-{i}" for i in range(4)]
    path = write(tmp_path, [
        row(refs[0], party_id_number=idn, party_name=f"Khúc Thừa Dụ {tag}"),
        row(refs[1], unit="00001", party_address_unit="00001",
            received_on="15/03/2018", status="received", accepted_on="", resolved_on="", closed_on="",
            subject="Kiến nghị về tiếng ồn", kind="knpa", party_name="Tạ Thị Thơm"),
        row(refs[2], unit=district["legacy"], party_address_unit="", status="accepted", resolved_on="", closed_on="",
            kind="TC", subject="Tố cáo cán bộ huyện", party_name="Chu Văn An"),
        # The same matter sent again in 2020: it must join the first case, not open a second.
        row(refs[3], received_on="2020-02-03", party_id_number=idn, party_name=f"KHUC THUA DU {tag}",
            subject="Đơn khiếu nại lần nữa quyết định thu hồi đất năm 2019", status="received", accepted_on="",
            resolved_on="", closed_on=""),
    ])
    res = kntc("import", path)
    assert res.returncode == 0, res.stderr
    assert "3 hồ sơ mới / new case files, 1 đơn gộp" in res.stdout
    got = {r["source_ref"]: r for r in owner_conn.execute(
        "SELECT li.source_ref, c.code, u.code AS unit, c.status, c.received_on, li.petition_id "
        "FROM kntc.legacy_import li JOIN kntc.case_file c ON c.id = li.case_id JOIN kntc.unit u ON u.id = c.handling_unit_id "
        "WHERE li.source_ref = ANY (%s)", (refs,)).fetchall()}
    ward = legacy["LX00004"]["current"]
    assert got[refs[0]]["unit"] == ward and got[refs[0]]["code"].startswith(ward + "-2019-")
    assert got[refs[1]]["unit"] == legacy["LX00001"]["current"]  # a bare GSO ward code means the legacy ward
    assert got[refs[2]]["unit"] == district["current"]  # a district maps to its province
    assert got[refs[3]]["code"] == got[refs[0]]["code"]  # joined as a second petition
    petitions = owner_conn.execute(
        "SELECT count(*) AS n FROM kntc.petition p JOIN kntc.case_file c ON c.id = p.case_id WHERE c.code = %s",
        (got[refs[0]]["code"],)).fetchone()["n"]
    assert petitions == 2

    again = kntc("import", path)
    assert again.returncode == 1 and "already imported as case" in again.stderr
