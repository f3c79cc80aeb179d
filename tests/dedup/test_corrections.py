"""The duty to correct: a reported discrepancy, the correction with its reason, and late ones
(more than 5 working days, rule DATA-CORRECT) listed per unit."""

from __future__ import annotations

from datetime import date, timedelta

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
    today = date.today()
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
                        json={"description": "Sai", "reported_on": (date.today() + timedelta(days=3)).isoformat()})
    assert future.status_code == 400


def test_open_report_past_its_limit_is_listed(officer, commune):
    unit, _ = commune()
    clerk = officer(unit, ["reception", "handling"])
    made = _case(clerk, unit)
    r = clerk.post(f"/api/cases/{made['code']}/discrepancies", json={
        "description": "Thiếu số định danh người khiếu nại", "reported_on": (date.today() - timedelta(days=20)).isoformat()})
    assert r.status_code == 201
    listed = clerk.get("/api/corrections/late", params={"unit": unit}).json()
    assert [(row["case_code"], row["state"]) for row in listed["data"]] == [(made["code"], "open_overdue")]
