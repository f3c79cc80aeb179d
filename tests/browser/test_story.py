"""The whole story in a real browser: reception → handling → resolution → head of unit → citizen."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def act(page, action: str, **fields: str) -> None:
    """Take a workflow action from the case page, filling its form, and wait for the page to come back."""
    form = page.locator(f"#action-{action}")
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def test_petition_from_reception_to_the_citizens_lookup(open_as, shots, tmp_path):
    # 1. Reception officer: records the visit, then the petition, and prints the receipt.
    reception = open_as("X00004", ["reception"])
    reception.click("nav.menu >> text=Tiếp công dân")
    reception.fill("#f-visitor_name", "Nguyễn Thị Hoa")
    reception.fill("#f-visitor_id_number", "001190001234")
    reception.fill("#f-visitor_address", "Số 12 phố Kim Mã, phường Ba Đình")
    reception.fill("#f-people_count", "2")
    reception.fill("#f-content", "Công dân trình bày việc bồi thường khi thu hồi đất chưa thỏa đáng.")
    reception.fill("#f-documents_received", "Đơn khiếu nại (2 trang), bản sao quyết định thu hồi đất")
    reception.screenshot(path=str(shots / "01-reception.png"), full_page=True)
    reception.click("form[action='/app/reception'] button[type=submit]")
    reception.wait_for_url("**/app/cases/new?reception=*")
    # The visit's details carry over into the petition form.
    assert reception.input_value("#f-party_full_name") == "Nguyễn Thị Hoa"
    reception.fill("#f-subject", "Khiếu nại mức bồi thường khi thu hồi đất ở")
    reception.fill("#f-respondent", "UBND phường Ba Đình")
    reception.screenshot(path=str(shots / "02-record-petition.png"), full_page=True)
    reception.click("form[action='/app/cases/new'] button[type=submit]")
    reception.click("#confirm-new")  # after the nationwide duplicate check
    reception.wait_for_url("**/app/receipt/*")
    code = reception.inner_text("#receipt-code").strip()
    secret = reception.inner_text("#receipt-secret").strip()
    assert re.fullmatch(r"X00004-\d{4}-\d{6}", code)
    assert re.fullmatch(r"([A-Z2-7]{4}-){5}[A-Z2-7]{4}", secret)
    reception.emulate_media(media="print")
    reception.screenshot(path=str(shots / "03-receipt-print.png"), full_page=True)
    assert not reception.locator("nav.menu").is_visible()  # the print stylesheet hides the menus
    reception.pdf(path=str(tmp_path / "receipt.pdf"))
    assert (tmp_path / "receipt.pdf").read_bytes().startswith(b"%PDF")
    reception.emulate_media(media="screen")

    # 2. Petition-handling officer: finds it in the inbox with its days left, hands it on, accepts it.
    handler = open_as("X00004", ["handling"])
    handler.click("nav.menu >> text=Xử lý đơn")
    row = handler.locator("#worklist tr", has_text=code)
    assert "còn" in row.inner_text()
    row.locator("a").click()
    act(handler, "submit")
    act(handler, "accept")
    assert handler.inner_text("#case-status") == "Đã thụ lý"

    # 3. Resolution officer: verifies, attaches the minutes, resolves with a published result.
    resolver = open_as("X00004", ["resolution"])
    resolver.click("nav.menu >> text=Giải quyết")
    resolver.locator("#worklist tr", has_text=code).locator("a").click()
    act(resolver, "start_verification")
    act(resolver, "record_verification", note="Làm việc với phòng Tài nguyên và Môi trường ngày 10/11.")
    resolver.set_input_files("#f-file", files=[{"name": "bien-ban-xac-minh.txt", "mimeType": "text/plain",
                                                 "buffer": "Biên bản xác minh".encode()}])
    with resolver.expect_navigation():
        resolver.click("form[action$='/upload'] button[type=submit]")
    with resolver.expect_download() as dl:
        resolver.click("#documents >> text=bien-ban-xac-minh.txt")
    assert dl.value.suggested_filename == "bien-ban-xac-minh.txt"
    act(resolver, "resolve", summary="Công nhận một phần nội dung khiếu nại; điều chỉnh mức bồi thường.",
        published_result="Đã ban hành quyết định giải quyết khiếu nại lần đầu.")
    assert resolver.inner_text("#case-status") == "Đã giải quyết"

    # 4. Head of unit: closes it, sees it in the statistics and on the map.
    head = open_as("X00004", ["head"], clearance=1)
    head.goto(f"/app/cases/{code}")
    act(head, "close")
    assert head.inner_text("#case-status") == "Đã kết thúc"
    timeline = head.inner_text("#timeline")
    for step in ("Tiếp nhận", "Thụ lý giải quyết", "Ghi nhận bước xác minh", "Kết thúc hồ sơ"):
        assert step in timeline
    head.screenshot(path=str(shots / "04-case-file.png"), full_page=True)
    head.click("nav.menu >> text=Thống kê")
    assert int(head.inner_text("#total-resolved")) >= 1
    assert head.locator("#by-kind svg.chart").count() == 1
    hanoi = head.locator("svg.map path[data-code=T01]")
    assert hanoi.get_attribute("fill") != "#f2f2f2"  # shaded: Hà Nội has cases
    assert head.locator("svg.map path").count() == 34
    head.screenshot(path=str(shots / "05-statistics.png"), full_page=True)

    # The national picture, drilled down country → province → commune by clicking.
    leader = open_as("VN", ["head"], clearance=2)
    leader.click("nav.menu >> text=Thống kê")
    assert leader.inner_text("#stats-unit") == "Cả nước"
    leader.screenshot(path=str(shots / "05b-statistics-national.png"), full_page=True)
    with leader.expect_navigation():
        leader.locator("svg.map a", has=leader.locator("path[data-code=T01]")).click()
    assert leader.inner_text("#stats-unit") == "Thành phố Hà Nội"
    with leader.expect_navigation():
        leader.click("#by-unit >> text=Phường Ba Đình")
    assert leader.inner_text("#stats-unit") == "Phường Ba Đình"
    assert int(leader.inner_text("#total-resolved")) >= 1

    # 5. The citizen follows it with the receipt; a wrong secret and a wrong code look alike.
    citizen = open_as()
    citizen.goto("/lookup")
    citizen.fill("#f-code", code)
    citizen.fill("#f-secret", secret.lower().replace("-", " "))
    citizen.click("button[type=submit]")
    assert citizen.inner_text("#lookup-status") == "Đã kết thúc"
    assert "Đã ban hành quyết định" in citizen.inner_text("#lookup-result")
    assert "Nguyễn Thị Hoa" not in citizen.content()
    citizen.screenshot(path=str(shots / "06-citizen-lookup.png"), full_page=True)

    answers = []
    for c, s in ((code, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"), (code[:-1] + ("1" if code[-1] != "1" else "2"), secret)):
        citizen.goto("/lookup")
        citizen.fill("#f-code", c)
        citizen.fill("#f-secret", s)
        citizen.click("button[type=submit]")
        answers.append((citizen.inner_text("#lookup-error"), citizen.locator("#lookup-result").count()))
    assert answers[0] == answers[1] and answers[0][1] == 0
    citizen.screenshot(path=str(shots / "07-citizen-lookup-refused.png"), full_page=True)


def test_officer_of_another_commune_gets_a_404_page_by_url(open_as, shots):
    reception = open_as("X00004", ["reception"])
    reception.goto("/app/cases/new")
    reception.fill("#f-party_full_name", "Đặng Văn Phúc")
    reception.fill("#f-subject", "Kiến nghị sửa đường ngõ 5")
    reception.fill("#f-content", "Đề nghị sửa mặt đường ngõ 5 bị hư hỏng.")
    reception.select_option("#f-kind", "recommendation")
    reception.select_option("#f-party_role", "petitioner")
    reception.click("form[action='/app/cases/new'] button[type=submit]")
    reception.click("#confirm-new")
    reception.wait_for_url("**/app/receipt/*")
    code = reception.inner_text("#receipt-code").strip()

    other = open_as("X00008", ["head"], clearance=2)
    resp = other.goto(f"/app/cases/{code}")
    assert resp.status == 404
    body = other.content()
    assert "Đặng Văn Phúc" not in body and "ngõ 5" not in body
    other.screenshot(path=str(shots / "08-other-commune-404.png"), full_page=True)


def test_english_interface_and_form_errors_next_to_fields(open_as, shots):
    page = open_as("X00004", ["reception"], lang="en")
    page.goto("/app/cases/new")
    assert page.locator("html").get_attribute("lang") == "en"
    page.fill("#f-party_full_name", "Hoàng Văn Em")
    page.fill("#f-party_id_number", "12345")
    page.fill("#f-subject", "Complaint about a land decision")
    page.fill("#f-content", "Text that must not be lost")
    page.click("form[action='/app/cases/new'] button[type=submit]")
    assert "12 digits" in page.inner_text("#err-party_id_number")
    assert page.input_value("#f-content") == "Text that must not be lost"
    page.screenshot(path=str(shots / "09-form-error-en.png"), full_page=True)
