"""The duty to correct: a reported discrepancy, the correction with its reason, and late ones
(more than 5 working days, rule DATA-CORRECT) listed per unit."""

from __future__ import annotations

from datetime import timedelta

from core_app.app import vietnam_today
from core_app.domain.deadlines import Calendar
from tests.conftest import petition_body


def _case(clerk, unit: str) -> dict:
    r = clerk.post("/api/cases", json=petition_body(parties=[
        {"role": "complainant", "full_name": "Lưu Thị Hảo", "address_unit": unit}]))
    assert r.status_code == 201, r.text
    return r.json()


def test_late_and_timely_corrections(officer, commune):
    unit, province = commune()
    clerk = officer(unit, ["reception", "handling"])
    inspector = officer(province, ["head"])
    today = vietnam_today()
    first, second = _case(clerk, unit), _case(clerk, unit)

    found_on = today - timedelta(days=30)
    r = inspector.post(f"/api/cases/{first['code']}/discrepancies", json={
        "description": "Tên người bị khiếu nại khác với hồ sơ giấy", "field": "respondent",
        "reported_on": found_on.isoformat()})
    assert r.status_code == 201, r.text
    late = r.json()
    assert late["rule_code"] == "DATA-CORRECT"
    assert late["due_on"] == Calendar().add_working_days(found_on, 5).isoformat()

    r = clerk.post(f"/api/cases/{second['code']}/discrepancies", json={"description": "Thiếu tên cơ quan bị khiếu nại"})
    assert r.status_code == 201
    timely = r.json()

    r = clerk.post(f"/api/cases/{first['code']}/discrepancies/{late['id']}/corrections", json={
        "version": first["version"], "respondent": "UBND phường (theo hồ sơ giấy)", "reason": "Sửa theo hồ sơ giấy"})
    assert r.status_code == 201, r.text
    assert r.json()["late"] is True and r.json()["working_days"] > 5
    r = clerk.post(f"/api/cases/{second['code']}/discrepancies/{timely['id']}/corrections", json={
        "version": second["version"], "respondent": "UBND phường", "reason": "Bổ sung theo hồ sơ giấy"})
    assert r.status_code == 201 and r.json()["late"] is False

    listed = inspector.get("/api/corrections/late", params={"unit": unit}).json()
    assert [row["case_code"] for row in listed["data"]] == [first["code"]]
    assert listed["per_unit"] == [{"unit": unit, "unit_name": listed["per_unit"][0]["unit_name"],
                                   "corrected_late": 1, "open_overdue": 0}]
    case = clerk.get(f"/api/cases/{first['code']}").json()
    assert case["respondent"] == "UBND phường (theo hồ sơ giấy)"


def test_correction_needs_a_reason_and_an_open_report(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception", "handling"])
    made = _case(clerk, unit)
    r = clerk.post(f"/api/cases/{made['code']}/discrepancies", json={"description": "Sai ngày nhận đơn"})
    disc = r.json()["id"]
    url = f"/api/cases/{made['code']}/discrepancies/{disc}/corrections"
    assert clerk.post(url, json={"version": made["version"], "subject": "Khiếu nại đã sửa"}).status_code == 422
    ok = clerk.post(url, json={"version": made["version"], "subject": "Khiếu nại đã sửa", "reason": "Theo đơn gốc"})
    assert ok.status_code == 201, ok.text
    again = clerk.post(url, json={"version": ok.json()["version"], "subject": "Lần nữa", "reason": "Theo đơn gốc"})
    assert again.status_code == 400 and again.json()["message"] == "Sai lệch này đã được sửa."
    missing = clerk.post(f"/api/cases/{made['code']}/discrepancies/not-a-uuid/corrections",
                         json={"version": 1, "subject": "x y z", "reason": "abc"})
    assert missing.status_code == 404
    future = clerk.post(f"/api/cases/{made['code']}/discrepancies",
                        json={"description": "Sai", "reported_on": (vietnam_today() + timedelta(days=3)).isoformat()})
    assert future.status_code == 400


def test_open_report_past_its_limit_is_listed(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception", "handling"])
    made = _case(clerk, unit)
    r = clerk.post(f"/api/cases/{made['code']}/discrepancies", json={
        "description": "Thiếu số định danh người khiếu nại", "reported_on": (vietnam_today() - timedelta(days=20)).isoformat()})
    assert r.status_code == 201
    listed = clerk.get("/api/corrections/late", params={"unit": unit}).json()
    assert [(row["case_code"], row["state"]) for row in listed["data"]] == [(made["code"], "open_overdue")]


def test_any_recorded_field_is_corrected_with_a_reason_and_audited(officer, commune, owner_conn):
    unit, province = commune()
    clerk = officer(unit, ["reception", "handling"])
    made = _case(clerk, unit)
    code = made["code"]
    case = clerk.get(f"/api/cases/{code}").json()
    party_id, petition_id = case["parties"][0]["id"], case["petitions"][0]["id"]

    def correct(target: str, field: str, value, target_id: str | None = None, who=clerk, **extra):
        version = who.get(f"/api/cases/{code}").json().get("version", 1)
        return who.post(f"/api/cases/{code}/corrections", json={
            "version": version, "target": target, "target_id": target_id, "field": field, "value": value,
            "reason": "Sửa theo hồ sơ giấy", **extra})

    for target, field, value, target_id in (
            ("party", "full_name", "Lưu Thị Hảo Nhiên", party_id),
            ("party", "address_unit", "LX31498", party_id),  # Phường 5, Sóc Trăng: kept beside its successor
            ("petition", "content", "Nội dung đúng theo bản giấy", petition_id),
            ("petition", "people_count", 3, petition_id),
            ("case", "received_on", "2026-01-02", None),
            ("case", "respondent", "", None),
            ("case", "kind", "recommendation", None)):
        r = correct(target, field, value, target_id)
        assert r.status_code == 201 and r.json()["late"] is False and r.json()["field"] == f"{target}.{field}", r.text
    case = clerk.get(f"/api/cases/{code}").json()
    p = case["parties"][0]
    assert (p["full_name"], p["address_unit_written"], p["address_unit"]) == ("Lưu Thị Hảo Nhiên", "LX31498", "X31507")
    assert (case["petitions"][0]["content"], case["petitions"][0]["people_count"]) == ("Nội dung đúng theo bản giấy", 3)
    assert (case["received_on"], case["respondent"], case["kind"]) == ("2026-01-02", None, "recommendation")
    assert len(case["discrepancies"]) == 7 and all(d["status"] == "corrected" for d in case["discrepancies"])
    corrected = [e for e in case["timeline"] if e["action"] == "correct"]
    assert corrected[0]["note"] == "Sửa theo hồ sơ giấy" and corrected[0]["data"]["before"] == "Lưu Thị Hảo"

    # The audit chain holds each before and after, and the correction records themselves.
    audit = owner_conn.execute(
        "SELECT before ->> 'full_name' AS was, after ->> 'full_name' AS now FROM kntc.audit_log "
        "WHERE table_name = 'party' AND row_key = %s AND op = 'UPDATE' ORDER BY at, id", (party_id,)).fetchall()
    assert ("Lưu Thị Hảo", "Lưu Thị Hảo Nhiên") in [(a["was"], a["now"]) for a in audit]
    n = owner_conn.execute("SELECT count(*) AS n FROM kntc.audit_log l JOIN kntc.correction k ON l.row_key = k.id::text "
                           "WHERE l.table_name = 'correction' AND k.case_id = %s", (case["id"],)).fetchone()["n"]
    assert n == 7

    # Refused: no reason, an unknown field, a bad value; outside the unit holding the case.
    version = case["version"]
    assert clerk.post(f"/api/cases/{code}/corrections", json={
        "version": version, "target": "case", "field": "subject", "value": "Trích yếu mới", "reason": ""}
    ).status_code == 422
    r = correct("case", "lookup_secret_hash", "x")
    assert r.status_code == 400 and r.json()["field"] == "field"
    assert correct("party", "id_number", "123", party_id).status_code == 400
    assert correct("case", "received_on", "2099-01-01").status_code == 400
    other_unit, _ = commune()
    assert correct("case", "subject", "Sửa từ xã khác", who=officer(other_unit, ["handling"])).status_code == 404
    r = correct("case", "subject", "Sửa từ tỉnh", who=officer(province, ["head"]))
    assert r.status_code == 403 and r.json()["error"] == "wrong_unit"
    assert clerk.get(f"/api/cases/{code}").json()["subject"] == case["subject"]

