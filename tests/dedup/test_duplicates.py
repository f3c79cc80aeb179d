"""Duplicate detection at intake, nationwide, through the API as officers use it."""

from __future__ import annotations

from tests.conftest import petition_body
from tests.dedup.conftest import fill_commune, id_number


def record(officer, unit: str, name: str, idn: str | None, subject: str, respondent: str = "UBND xã") -> str:
    party = {"role": "complainant", "full_name": name, "address_unit": unit, "address": "Thôn Đông"}
    if idn:
        party["id_number"] = idn
    r = officer.post("/api/cases", json=petition_body(subject=subject, respondent=respondent, parties=[party]))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def check(officer, parties: list[dict], subject: str, respondent: str | None = None) -> dict:
    r = officer.post("/api/dedup/check", json={"parties": parties, "subject": subject, "respondent": respondent})
    assert r.status_code == 200, r.text
    return r.json()


def codes(result: dict) -> list[str]:
    return [c["case_code"] for c in result["candidates"] if c["in_scope"]]


def reasons_of(result: dict, code: str) -> set[str]:
    hit = next(c for c in result["candidates"] if c.get("case_code") == code)
    return {r["code"] for r in hit["reasons"]}


def test_name_typed_with_and_without_diacritics_is_the_same_person(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    code = record(clerk, unit, "Nguyễn Văn Đức", None, "Khiếu nại quyết định thu hồi đất ở")
    for written in ("NGUYEN VAN DUC", "Nguyen  Van  Duc", "nguyễn văn đức"):
        found = check(clerk, [{"full_name": written, "address_unit": unit}], "Khiếu nại việc thu hồi đất ở")
        assert code in codes(found), written
        assert "name_address" in reasons_of(found, code)
        assert found["candidates"][0]["case_code"] == code


def test_same_id_number_under_another_name_is_found(officer, commune):
    unit, _ = commune()
    other_unit, _ = commune()
    clerk = officer(unit, ["reception"])
    idn = id_number()
    code = record(clerk, unit, "Trần Thị Mai", idn, "Tố cáo cán bộ địa chính nhận tiền")
    found = check(clerk, [{"full_name": "Trần Thị Mây", "id_number": idn, "address_unit": other_unit}],
                  "Đơn phản ánh về cán bộ địa chính")
    assert code in codes(found)
    labels = next(c for c in found["candidates"] if c["case_code"] == code)["reasons"]
    assert {"code": "id_number", "label": "cùng số định danh cá nhân", "label_en": "same personal ID number"} in labels


def test_resent_petition_with_reworded_subject_is_found(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    code = record(clerk, unit, "Phạm Thị Hồng Nhung", None,
                  "Khiếu nại quyết định bồi thường khi thu hồi đất của UBND xã", respondent="UBND xã Tân Lập")
    found = check(clerk, [{"full_name": "Pham Thi Hong Nhung", "address_unit": unit}],
                  "Đơn khiếu nại lần nữa đối với quyết định bồi thường thu hồi đất do UBND xã",
                  respondent="Ủy ban nhân dân xã Tân Lập")
    assert code in codes(found)
    assert {"name_address", "similar_subject"} <= reasons_of(found, code)


def test_different_people_of_the_same_commune_do_not_match(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    record(clerk, unit, "Lê Thị Hoa", id_number(), "Phản ánh tiếng ồn của quán karaoke ban đêm",
           respondent="Quán karaoke Ánh Dương")
    found = check(clerk, [{"full_name": "Đỗ Quốc Bảo", "id_number": id_number(), "address_unit": unit}],
                  "Khiếu nại quyết định xử phạt vi phạm hành chính về xây dựng", respondent="Chủ tịch UBND phường")
    assert found["candidates"] == []


def test_case_outside_scope_is_reported_only_as_held_elsewhere(officer, commune):
    unit_a, prov_a = commune()
    unit_b, prov_b = commune()
    while prov_b == prov_a:
        unit_b, prov_b = commune()
    holder = officer(unit_a, ["reception"])
    idn = id_number()
    subject = "Tố cáo sai phạm trong đấu thầu dự án trường học"
    code = record(holder, unit_a, "Hoàng Minh Tuấn", idn, subject)
    outsider = officer(unit_b, ["reception"])
    r = outsider.post("/api/dedup/check", json={"parties": [{"full_name": "Hoàng Minh Tuấn", "id_number": idn}],
                                                "subject": subject})
    assert r.status_code == 200, r.text
    hit = r.json()["candidates"][-1]
    assert hit["in_scope"] is False
    assert set(hit) == {"in_scope", "held_elsewhere", "inquiry_handle", "message", "message_en"}
    assert hit["message"].startswith("Có thể đã có hồ sơ")
    assert code not in r.text and "đấu thầu" not in r.text and unit_a not in r.text
    assert r.json()["held_elsewhere"] is True


def test_officer_links_the_petition_or_confirms_a_new_case(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    idn = id_number()
    code = record(clerk, unit, "Vũ Thị Lan", idn, "Kiến nghị sửa đường liên thôn")
    found = check(clerk, [{"full_name": "Vu Thi Lan", "id_number": idn, "address_unit": unit}],
                  "Tiếp tục kiến nghị sửa đường liên thôn")
    r = clerk.post("/api/dedup/decisions", json={
        "check_id": found["check_id"], "decision": "linked", "case_code": code,
        "petition": {"channel": "letter", "content": "Đơn gửi lần hai về việc sửa đường liên thôn"}})
    assert r.status_code == 201, r.text
    assert r.json()["decision"] == "linked" and r.json()["petition_id"]
    case = clerk.get(f"/api/cases/{code}").json()
    assert len(case["petitions"]) == 2
    assert "add_petition" in [e["action"] for e in case["timeline"]]
    again = clerk.post("/api/dedup/decisions", json={"check_id": found["check_id"], "decision": "new",
                                                     "case_code": code})
    assert again.status_code == 409

    # A new matter is decided by recording it under the check; the decision is kept with the case.
    khoa = {"role": "complainant", "full_name": "Đinh Văn Khoa", "id_number": id_number(), "address_unit": unit}
    other = check(clerk, [{k: khoa[k] for k in ("full_name", "id_number", "address_unit")}],
                  "Phản ánh cây đổ chắn lối đi")
    r = clerk.post("/api/cases", json=petition_body(subject="Phản ánh cây đổ chắn lối đi", parties=[khoa],
                                                    dedup_check_id=other["check_id"]))
    assert r.status_code == 201 and r.json()["dedup_decision"] == "new", r.text
    new_code = r.json()["code"]
    r = clerk.post("/api/dedup/decisions", json={"check_id": other["check_id"], "decision": "new",
                                                 "case_code": new_code})
    assert r.status_code == 409
    intake = clerk.get(f"/api/cases/{new_code}").json()["intake"]
    assert [d["decision"] for d in intake] == ["new"]


def test_someone_elses_check_cannot_be_decided(officer, commune):
    unit, _ = commune()
    a = officer(unit, ["reception"])
    b = officer(unit, ["reception"])
    found = check(a, [{"full_name": "Lý Thị Bé", "address_unit": unit}], "Kiến nghị về trợ cấp")
    r = b.post("/api/dedup/decisions", json={"check_id": found["check_id"], "decision": "elsewhere", "unit": unit})
    assert r.status_code == 404


def test_bad_checks_are_refused_in_both_languages(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    r = clerk.post("/api/dedup/check", json={"parties": [], "subject": "abc"})
    assert r.status_code == 422 and r.json()["message"].startswith("Dữ liệu nhập không hợp lệ")
    r = clerk.post("/api/dedup/check", json={"parties": [{"full_name": "Ai Đó"}]})
    assert r.status_code == 422
    r = clerk.post("/api/dedup/check", json={"parties": [{"full_name": "Ai Đó", "address_unit": "X99999999"}]})
    assert r.status_code == 400 and "X99999999" in r.json()["message"]
    reader = officer(unit, ["external_reader"])
    r = reader.post("/api/dedup/check", json={"parties": [{"id_number": id_number()}]})
    assert r.status_code == 403


def test_a_corrected_subject_is_matched_by_its_new_wording(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception", "handling"])
    code = record(clerk, unit, "Trịnh Văn Sơn", None, "Phản ánh tiếng ồn của xưởng gỗ ban đêm")
    version = clerk.get(f"/api/cases/{code}").json()["version"]
    r = clerk.patch(f"/api/cases/{code}", json={
        "version": version, "subject": "Khiếu nại việc cấp giấy chứng nhận quyền sử dụng đất cho hộ bên cạnh",
        "reason": "Ghi sai nội dung khi tiếp nhận"})
    assert r.status_code == 200, r.text
    # Someone else of the commune, about the corrected matter: found by the subject alone.
    neighbour = {"full_name": "Đặng Thị Thu", "address_unit": unit}
    found = check(clerk, [neighbour], "Khiếu nại về việc cấp giấy chứng nhận quyền sử dụng đất cho hộ bên cạnh")
    assert code in codes(found)
    assert "similar_subject" in reasons_of(found, code)
    assert code not in codes(check(clerk, [neighbour], "Phản ánh tiếng ồn của xưởng gỗ ban đêm"))


def test_the_whole_commune_is_compared_however_many_live_there(officer, commune, owner_conn):
    """A large commune holds over 10,000 parties at national scale: the one to find is compared
    even when it comes after 6,000 others, in the order of recording and of names alike."""
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    template = record(clerk, unit, "Nguyễn Văn Số 0", None, "Đề nghị cấp bản sao giấy khai sinh số 0")
    fill_commune(owner_conn, template, unit, 6000)
    owner_conn.execute("ANALYZE kntc.party")
    code = record(clerk, unit, "Vương Thị Yến", None, "Kiến nghị làm lại cống thoát nước bị sập trước nhà",
                  respondent="UBND xã")
    found = check(clerk, [{"full_name": "Vương Thị Hải Yến", "address_unit": unit}],
                  "Tiếp tục kiến nghị làm lại cống thoát nước bị sập trước nhà")
    assert found["candidates"][0]["case_code"] == code
    assert "similar_subject" in reasons_of(found, code)
    assert all(c["case_code"] == code for c in found["candidates"])


def test_a_crowded_communes_protected_cases_are_looked_into_only_when_near(officer, commune, owner_conn, cluster):
    """Whether the officer may see a protected key (their hand on its case) is asked only for keys
    near the petition: a ward's history of protected denunciations about other matters costs one
    comparison of codes each, not a look-up of the officer each."""
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    template = record(clerk, unit, "Nguyễn Văn Số 0", None, "Đề nghị cấp bản sao giấy khai sinh số 0")
    fill_commune(owner_conn, template, unit, 400)
    owner_conn.execute("UPDATE kntc.dedup_key k SET protected = true FROM kntc.unit u "
                       "WHERE u.code = %s AND k.address_unit_id = u.id", (unit,))
    near = record(clerk, unit, "Vương Thị Yến", None, "Kiến nghị làm lại cống thoát nước bị sập trước nhà")
    out = cluster.superuser_psql(
        "BEGIN; SET LOCAL track_functions = 'pl'; "
        "SELECT count(*) FROM kntc.dedup_match(NULL, ARRAY['Vương Thị Hải Yến'], "
        f"ARRAY[(SELECT id FROM kntc.unit WHERE code = '{unit}')], "
        "'Tiếp tục kiến nghị làm lại cống thoát nước bị sập trước nhà', NULL); "
        "SELECT 'asked=' || coalesce(pg_stat_get_xact_function_calls('kntc.handles_case(uuid)'::regprocedure), 0)")
    asked = int(out.split("asked=")[1].split()[0])
    # The near case is the clerk's own and not protected; the 401 protected ones are about birth
    # certificates: none is near enough to ask about.
    assert asked == 0, out
    assert near in codes(check(clerk, [{"full_name": "Vương Thị Hải Yến", "address_unit": unit}],
                               "Tiếp tục kiến nghị làm lại cống thoát nước bị sập trước nhà"))


def test_a_crowded_communes_near_cases_are_scored_without_reading_them_again(officer, commune, owner_conn, cluster):
    """The cases near the petition are scored from their keys' codes: 400 near cases cost no read of
    their rows, nor of their parties for an identity number when their names are not near, and the
    similarity reported is still pg_trgm's over the case's own subject and respondent, to the last
    bit."""
    unit, _ = commune()
    clerk = officer(unit, ["reception"])
    template = record(clerk, unit, "Nguyễn Văn Số 0", None, "Đề nghị cấp bản sao giấy khai sinh số 0",
                      respondent="UBND xã Tân Lập")
    fill_commune(owner_conn, template, unit, 400)
    subject, respondent = "Đề nghị cấp lại bản sao giấy khai sinh số 17", "Ủy ban nhân dân xã Tân Lập"
    idn = id_number()
    out = cluster.superuser_psql(
        "BEGIN; "
        f"CREATE TEMP TABLE m AS SELECT * FROM kntc.dedup_match(ARRAY['{idn}'], ARRAY['Lê Thị Hoa'], "
        f"ARRAY[(SELECT id FROM kntc.unit WHERE code = '{unit}')], '{subject}', '{respondent}', 50, NULL, "
        f"ARRAY['{idn}']); "
        "SELECT 'read=' || coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) "
        "  FROM pg_stat_xact_user_tables WHERE relid = 'kntc.case_file'::regclass; "
        "SELECT 'parties=' || coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) "
        "  FROM pg_stat_xact_user_tables WHERE relid = 'kntc.party'::regclass; "
        "SELECT 'found=' || count(*) || ' unlike=' || count(*) FILTER (WHERE "
        f"  m.subject_sim <> similarity(c.subject_norm, kntc.norm('{subject}')) OR "
        f"  m.respondent_sim <> similarity(c.respondent_norm, kntc.norm('{respondent}'))) "
        "  FROM m JOIN kntc.case_file c ON c.id = m.case_id; "
        "ROLLBACK")
    read, parties, found, unlike = (int(out.split(f"{k}=")[1].split()[0])
                                    for k in ("read", "parties", "found", "unlike"))
    assert found == 50, out
    assert read == 0, out
    # The look-ups by identity number and by exact name, not one per near key.
    assert parties <= 4, out
    assert unlike == 0, out
