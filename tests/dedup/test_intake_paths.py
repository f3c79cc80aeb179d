"""Every intake path records a petition only under a duplicate check and the officer's decision, kept
with the case: the API, the web form, the case page, the legacy import. Two people with different
ID numbers are not the same matter; an address written in a pre-2025 unit is accepted and matched
through its successor."""

from __future__ import annotations

import secrets

from tests.conftest import petition_body
from tests.dedup.conftest import id_number
from tests.dedup.test_import import row, write

OLD_WARD, ITS_SUCCESSOR = "LX31498", "X31507"  # Phường 5, Sóc Trăng -> Phường Sóc Trăng (2025 reform)


def party(name: str, unit: str, idn: str | None = None, role: str = "complainant") -> dict:
    p = {"role": role, "full_name": name, "address_unit": unit, "address": "Số 9 đường Mạc Đĩnh Chi"}
    if idn:
        p["id_number"] = idn
    return p


def check(officer, parties: list[dict], subject: str) -> dict:
    r = officer.post("/api/dedup/check", json={
        "parties": [{k: p[k] for k in ("full_name", "id_number", "address_unit") if p.get(k)} for p in parties],
        "subject": subject})
    assert r.status_code == 200, r.text
    return r.json()


def cases_with(owner_conn, subject: str) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM kntc.case_file WHERE subject = %s", (subject,)).fetchone()["n"]


def test_the_api_records_a_petition_only_under_the_officers_own_fresh_check(officer, commune, owner_conn):
    unit, _ = commune()
    clerk, colleague = officer(unit, ["reception"]), officer(unit, ["reception"])
    subject = f"Khiếu nại việc cấp phép xây dựng {secrets.token_hex(3)}"
    who = [party("Bùi Văn Chính", unit, id_number())]
    body = petition_body(subject=subject, parties=who)

    r = clerk.client.post("/api/cases", json=body)
    assert r.status_code == 409 and r.json()["error"] == "duplicate_check_required"
    assert r.json()["message"].startswith("Chưa kiểm tra trùng") and "dedup/check" in r.json()["message_en"]
    theirs = check(colleague, who, subject)["check_id"]
    assert clerk.client.post("/api/cases", json={**body, "dedup_check_id": theirs}).status_code == 409
    other = check(clerk, [party("Người Khác Hẳn", unit, id_number())], subject)["check_id"]
    r = clerk.client.post("/api/cases", json={**body, "dedup_check_id": other})
    assert r.status_code == 409 and "not run for these parties" in r.json()["message_en"]
    assert cases_with(owner_conn, subject) == 0

    mine = check(clerk, who, subject)["check_id"]
    r = clerk.client.post("/api/cases", json={**body, "dedup_check_id": mine, "dedup_note": "Không có hồ sơ trùng"})
    assert r.status_code == 201 and r.json()["dedup_decision"] == "new", r.text
    again = clerk.client.post("/api/cases", json={**body, "dedup_check_id": mine})
    assert again.status_code == 409 and "already has its decision" in again.json()["message_en"]
    code = r.json()["code"]
    kept = clerk.get(f"/api/cases/{code}").json()["intake"]
    assert [(d["decision"], d["note"], d["decided_by"]) for d in kept] == [("new", "Không có hồ sơ trùng",
                                                                             clerk.username)]
    # The second petition on the matter: linked through a check, never without one.
    r = clerk.post(f"/api/cases/{code}/petitions", json={"channel": "email", "content": "Gửi lại qua thư điện tử"})
    assert r.status_code == 409
    found = check(clerk, who, subject)
    assert found["candidates"][0]["case_code"] == code
    r = clerk.post("/api/dedup/decisions", json={"check_id": found["check_id"], "decision": "linked", "case_code": code,
                                                 "petition": {"channel": "email", "content": "Gửi lại qua thư"}})
    assert r.status_code == 201, r.text
    kept = clerk.get(f"/api/cases/{code}").json()["intake"]
    assert [d["decision"] for d in kept] == ["new", "linked"]
    assert kept[1]["proposed"][0]["case_code"] == code  # what was proposed is kept with the decision
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.petition p JOIN kntc.case_file c ON c.id = p.case_id "
                              "WHERE c.code = %s AND p.intake_check_id IS NULL", (code,)).fetchone()["n"] == 0


def test_the_legacy_import_records_its_check_and_decision_with_each_case(tmp_path, kntc, owner_conn):
    tag = secrets.token_hex(3)
    idn = id_number()
    first, resent = f"OLD-{tag}-1", f"OLD-{tag}-2"
    path = write(tmp_path, [row(first, party_id_number=idn),
                            row(resent, party_id_number=idn, received_on="2019-09-03", accepted_on="2019-09-10",
                                resolved_on="2019-10-15", closed_on="2019-10-30",
                                subject="Khiếu nại lại quyết định thu hồi đất năm 2019")])
    res = kntc("import", path)
    assert res.returncode == 0, res.stderr
    got = owner_conn.execute(
        "SELECT li.source_ref, d.decision, d.source, k.source AS check_source, k.candidates, p.intake_check_id = k.id AS tied "
        "FROM kntc.legacy_import li JOIN kntc.petition p ON p.id = li.petition_id "
        "JOIN kntc.dedup_check k ON k.id = p.intake_check_id JOIN kntc.dedup_decision d ON d.check_id = k.id "
        "WHERE li.source_ref = ANY (%s) ORDER BY li.source_ref", ([first, resent],)).fetchall()
    assert [(g["source_ref"], g["decision"], g["source"], g["check_source"], g["tied"]) for g in got] == [
        (first, "new", "import", "import", True), (resent, "linked", "import", "import", True)]
    assert got[1]["candidates"][0]["case_code"]  # what the matcher proposed is kept


def test_same_name_in_the_same_commune_with_different_id_numbers_is_not_the_same_matter(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    nam = party("Lê Văn Nam", unit, id_number())
    r = clerk.post("/api/cases", json=petition_body(subject="Khiếu nại việc thu hồi đất trồng lúa", parties=[nam]))
    code = r.json()["code"]
    nam_twin = party("Lê Văn Năm", unit, id_number())
    found = check(clerk, [nam_twin], "Phản ánh tiếng ồn công trình ban đêm")
    hit = [c for c in found["candidates"] if c.get("case_code") == code]
    # At most a low note, never the same person.
    assert all({x["code"] for x in h["reasons"]} == {"same_name_other_id"} and h["score"] < 0.2 for h in hit)
    if hit:
        assert hit[0]["reasons"][0]["label"].startswith("trùng họ tên nhưng khác số định danh")
    # The same person (same ID) is found; a query without an ID still matches by name and address.
    same = check(clerk, [{**nam_twin, "id_number": nam["id_number"]}], "Phản ánh tiếng ồn công trình ban đêm")
    assert "id_number" in {x["code"] for x in next(c for c in same["candidates"] if c["case_code"] == code)["reasons"]}
    anon = check(clerk, [{k: v for k, v in nam_twin.items() if k != "id_number"}], "Khiếu nại thu hồi đất trồng lúa")
    assert "name_address" in {x["code"] for x in next(c for c in anon["candidates"] if c["case_code"] == code)["reasons"]}


def test_a_pre_reform_address_is_recorded_beside_its_successor_and_matched_on_both(officer):
    clerk = officer(ITS_SUCCESSOR, ["reception"])
    name = f"Thạch Thị Sô Phia {secrets.token_hex(2)}"
    old = party(name, OLD_WARD)
    subject = "Khiếu nại quyết định bồi thường khi mở rộng đường Trần Hưng Đạo"
    r = clerk.post("/api/cases", json=petition_body(subject=subject, parties=[old]))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    p = clerk.get(f"/api/cases/{code}").json()["parties"][0]
    assert (p["address_unit_written"], p["address_unit"]) == (OLD_WARD, ITS_SUCCESSOR)
    assert p["address_unit_written_name"] == "Phường 5" and p["address_unit_name"] == "Phường Sóc Trăng"
    for written in (OLD_WARD, ITS_SUCCESSOR, OLD_WARD.removeprefix("LX")):
        found = check(clerk, [{"full_name": name, "address_unit": written}], "Khiếu nại bồi thường mở rộng đường")
        assert code in [c.get("case_code") for c in found["candidates"]], written
    # And the other way: a case recorded at the current unit is found from the old address.
    name2 = f"Lâm Văn Sơn {secrets.token_hex(2)}"
    code2 = clerk.post("/api/cases", json=petition_body(subject=subject, parties=[party(name2, ITS_SUCCESSOR)])).json()[
        "code"]
    found = check(clerk, [{"full_name": name2, "address_unit": OLD_WARD}], subject)
    assert code2 in [c.get("case_code") for c in found["candidates"]]
    r = clerk.post("/api/cases", json=petition_body(parties=[party("Ai Đó", "LX99999")]))
    assert r.status_code == 400 and "LX99999" in r.json()["message"]
