"""Denunciations brought from the old system keep the denouncer's identity as secret as new ones.

Threat rows (runbooks/security.md): T29.
"""

from __future__ import annotations

import secrets

from tests.conftest import Officer
from tests.dedup.conftest import id_number, kntc  # noqa: F401  (fixture)
from tests.dedup.test_import import row, write


def test_imported_denouncer_is_hidden_from_the_denounced_official_in_the_same_unit(
        tmp_path, kntc, owner_conn, server, make_account):  # noqa: F811
    tag = secrets.token_hex(3)
    name, idn = f"Trần Thị Tố Giác {tag}", id_number()
    path = write(tmp_path, [row(f"OLD-TC-{tag}", kind="TC", subject=f"Tố cáo cán bộ địa chính {tag}",
                                party_name=name, party_id_number=idn, status="accepted", resolved_on="",
                                closed_on="", respondent="Cán bộ địa chính phường")])
    res = kntc("import", path)
    assert res.returncode == 0, res.stderr
    code = owner_conn.execute("SELECT c.code FROM kntc.legacy_import li JOIN kntc.case_file c ON c.id = li.case_id "
                              "WHERE li.source_ref = %s", (f"OLD-TC-{tag}",)).fetchone()["code"]
    # The denounced official: an officer of the unit that holds the case, not handling it.
    insider = Officer(server, make_account(code.split("-")[0], ["reception", "handling"]))
    r = insider.get(f"/api/cases/{code}")
    assert r.status_code == 200, r.text
    assert name not in r.text and idn not in r.text
    found = insider.get("/api/search", params={"id_number": idn})
    assert code not in found.text and name not in found.text


def test_an_explicit_waiver_in_the_file_is_the_only_way_an_imported_denouncer_is_shown(
        tmp_path, kntc, owner_conn):  # noqa: F811
    tag = secrets.token_hex(3)
    # Three unrelated matters (different people, subjects and communes), so none joins another.
    path = write(tmp_path, [
        row(f"OLD-TC-{tag}-a", kind="TC", party_id_number=id_number(), party_name=f"Lê Văn A {tag}",
            subject=f"Tố cáo sai phạm xây dựng {tag}", party_address_unit="LX00001"),
        row(f"OLD-TC-{tag}-b", kind="TC", party_id_number=id_number(), party_name=f"Phạm Thị B {tag}",
            subject=f"Tố cáo thu phí trái phép {tag}", party_address_unit="LX00007"),
        row(f"OLD-TC-{tag}-c", kind="KN", party_id_number=id_number(), party_name=f"Vũ Văn C {tag}",
            subject=f"Khiếu nại quyết định xử phạt {tag}", party_address_unit="LX00013")])
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines[0] += ",identity_protected"
    lines[1] += ","
    lines[2] += ",0"
    lines[3] += ","
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    res = kntc("import", path)
    assert res.returncode == 0, res.stderr
    got = {r["source_ref"]: r["identity_protected"] for r in owner_conn.execute(
        "SELECT li.source_ref, p.identity_protected FROM kntc.legacy_import li "
        "JOIN kntc.party p ON p.case_id = li.case_id WHERE li.source_ref LIKE %s", (f"OLD-TC-{tag}-%",))}
    assert got == {f"OLD-TC-{tag}-a": True, f"OLD-TC-{tag}-b": False, f"OLD-TC-{tag}-c": False}
