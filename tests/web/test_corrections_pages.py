"""Corrections on screen: a discrepancy reported and a field corrected with a reason from the case
page, refused without one; the unit's late corrections."""

from __future__ import annotations

import re
from datetime import timedelta

from core_app.app import vietnam_today
from tests.conftest import petition_body
from tests.web.test_pages import record_petition


def test_a_late_correction_on_screen_is_listed_for_the_unit(officer, web_officer):
    unit = "X00008"
    clerk = officer(unit, ["reception", "handling"])
    made = clerk.post("/api/cases", json=petition_body()).json()
    r = clerk.post(f"/api/cases/{made['code']}/discrepancies", json={
        "description": "Sai ngày nhận đơn so với sổ", "reported_on": (vietnam_today() - timedelta(days=15)).isoformat()})
    r = clerk.post(f"/api/cases/{made['code']}/corrections", json={
        "version": made["version"], "target": "case", "field": "channel", "value": "letter",
        "reason": "Đơn gửi qua bưu điện", "discrepancy_id": r.json()["id"]})
    assert r.status_code == 201 and r.json()["late"] is True
    page = web_officer(unit, ["head"]).get("/app/corrections")
    assert page.status_code == 200 and made["code"] in page.text and "Sửa dữ liệu chậm" in page.text


def test_a_field_is_corrected_from_the_case_page_and_refused_without_a_reason(web_officer):
    user = web_officer("X00008", ["reception", "handling"])
    code, _ = record_petition(user, subject="Khiếu nại việc cấp giấy chứng nhận (sai tên)")
    page = user.get(f"/app/cases/{code}")
    assert 'id="correct-form"' in page.text and 'value="case::subject"' in page.text
    version = int(re.search(r'name="version" value="(\d+)"', page.text).group(1))
    r = user.post(f"/app/cases/{code}/discrepancies", {"description": "Trích yếu khác hồ sơ giấy", "field": "subject"})
    assert r.status_code == 303
    r = user.post(f"/app/cases/{code}/corrections", {"field": "case::subject", "value": "Khiếu nại cấp giấy chứng nhận",
                                                     "reason": "", "version": str(version)})
    assert r.status_code == 400 and 'id="correct-error"' in r.text and "lý do" in r.text
    r = user.post(f"/app/cases/{code}/corrections", {"field": "case::subject", "value": "Khiếu nại cấp giấy chứng nhận",
                                                     "reason": "Theo bản giấy", "version": str(version)})
    assert r.status_code == 303
    page = user.get(f"/app/cases/{code}")
    assert "Khiếu nại cấp giấy chứng nhận" in page.text and "đã sửa" in page.text
