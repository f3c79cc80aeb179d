"""The officer's work in a real browser: an intake whose duplicate check finds the matter already on
file and links the petition to it; a discrepancy reported and corrected with a reason."""

from __future__ import annotations

import re
import secrets

import pytest

pytestmark = pytest.mark.browser


def fill_petition(page, name: str, idn: str, unit: str, subject: str, content: str) -> None:
    page.goto("/app/cases/new")
    page.fill("#f-party_full_name", name)
    page.fill("#f-party_id_number", idn)
    page.fill("#f-party_address_unit", unit)
    page.fill("#f-subject", subject)
    page.fill("#f-content", content)


def test_intake_with_a_duplicate_found_and_linked(open_as, shots):
    reception = open_as("X00004", ["reception"])
    idn = f"0011{secrets.randbelow(10**8):08d}"
    name = "Trịnh Văn Lâm"
    fill_petition(reception, name, idn, "X00004", "Khiếu nại quyết định thu hồi đất vườn",
                  "Không đồng ý mức bồi thường đất vườn.")
    reception.click("#run-check")
    reception.click("#confirm-new")
    reception.wait_for_url("**/app/receipt/*")
    code = reception.inner_text("#receipt-code").strip()

    # The same person writes again, from an address written before the 2025 reform.
    fill_petition(reception, name, idn, "LX00004", "Khiếu nại lại về quyết định thu hồi đất vườn",
                  "Gửi lại đơn vì chưa nhận được trả lời.")
    reception.screenshot(path=str(shots / "10-intake-second-petition.png"), full_page=True)
    reception.click("#run-check")
    row = reception.locator("#candidates tr.candidate", has_text=code)
    assert row.count() == 1 and "cùng số định danh cá nhân" in row.inner_text()
    reception.screenshot(path=str(shots / "11-intake-duplicate-found.png"), full_page=True)
    with reception.expect_navigation():
        row.locator("button.link-case").click()
    assert re.search(rf"/app/cases/{code}", reception.url)
    petitions = reception.locator("#petitions + ul li")
    assert petitions.count() == 2 and "Gửi lại đơn" in petitions.nth(1).inner_text()
    assert "gộp vào hồ sơ này" in reception.inner_text("#intake")
    reception.locator("#intake").scroll_into_view_if_needed()
    reception.screenshot(path=str(shots / "12-intake-linked.png"), full_page=True)


def test_a_correction_with_its_reason(open_as, shots):
    clerk = open_as("X00008", ["reception", "handling"])
    fill_petition(clerk, "Phan Thị Ngọc", f"0012{secrets.randbelow(10**8):08d}", "X00008",
                  "Kiến nghị sửa chữa trường mầm non", "Đề nghị sửa mái trường mầm non thôn 3.")
    clerk.click("#run-check")
    clerk.click("#confirm-new")
    clerk.wait_for_url("**/app/receipt/*")
    code = clerk.inner_text("#receipt-code").strip()
    clerk.goto(f"/app/cases/{code}")

    clerk.click("#corrections summary >> nth=0")
    clerk.fill("#f-description", "Tên người gửi đơn khác với đơn giấy (Phan Thị Ngọc Ánh)")
    clerk.fill("#f-report-field", "party.full_name")
    with clerk.expect_navigation():
        clerk.click("#report-form button[type=submit]")
    clerk.click("#correct summary")
    option = clerk.locator("#f-correct-field option", has_text="Phan Thị Ngọc — Họ và tên")
    clerk.select_option("#f-correct-field", option.get_attribute("value"))
    clerk.fill("#f-correct-value", "Phan Thị Ngọc Ánh")
    clerk.select_option("#f-discrepancy_id", index=1)
    with clerk.expect_navigation():  # no reason: refused, nothing typed is lost
        clerk.click("#correct-form button[type=submit]")
    assert "lý do" in clerk.inner_text("#correct-error")
    assert clerk.input_value("#f-correct-value") == "Phan Thị Ngọc Ánh"
    clerk.fill("#f-correct-reason", "Sửa theo đơn giấy và căn cước công dân")
    clerk.screenshot(path=str(shots / "13-correction-form.png"), full_page=True)
    with clerk.expect_navigation():
        clerk.click("#correct-form button[type=submit]")
    assert "Người khiếu nại: Phan Thị Ngọc Ánh" in clerk.inner_text("section.card >> nth=0")
    assert "đã sửa" in clerk.inner_text("#corrections")
    timeline = clerk.inner_text("#timeline")
    assert "Sửa dữ liệu" in timeline and "Sửa theo đơn giấy" in timeline
    clerk.locator("#corrections").scroll_into_view_if_needed()
    clerk.screenshot(path=str(shots / "14-correction-done.png"), full_page=True)
