"""The web pages over real HTTP against the real server: sessions, CSRF, scope, forms, lookup, exports."""

from __future__ import annotations

import io
import re

from openpyxl import load_workbook

from core_app.app import vietnam_today

SECRET = re.compile(r'id="receipt-secret">([A-Z2-7-]+)<')


def record_petition(user, **over) -> tuple[str, str]:
    """Record a petition through the form; returns (code, lookup secret) read from the receipt page."""
    user.get("/app/cases/new")
    form = {"party_role": "complainant", "party_full_name": "Trần Thị Bình", "party_id_number": "001190000456",
            "kind": "complaint", "channel": "in_person", "subject": "Khiếu nại việc cấp giấy chứng nhận",
            "content": "Đề nghị xem xét lại việc cấp giấy chứng nhận quyền sử dụng đất.", "people_count": "1",
            "complaint_round": "1", "classification": "0", **over}
    r = user.record(form)
    assert r.status_code == 303, r.text
    receipt = user.get(r.headers["location"])
    assert receipt.status_code == 200
    code = re.search(r'id="receipt-code">([^<]+)<', receipt.text).group(1)
    return code, SECRET.search(receipt.text).group(1)


def test_pages_carry_security_headers_and_no_inline_code(web):
    r = web().get("/login")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "<script" not in r.text and "style=" not in r.text
    assert 'lang="vi"' in r.text and "Đăng nhập" in r.text


def test_session_cookie_is_httponly_and_samesite(web, make_account):
    user = web()
    user.get("/login")
    r = user.post("/login", {"username": make_account("X00004", ["reception"]), "password": "Test-password-2026",
                             "next": "/app"})
    assert r.status_code == 303
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("kntc_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    # Served over plain HTTP in the test: Secure is set only when the request came over HTTPS.
    assert "Secure" not in cookie
    # Behind the TLS-terminating proxy (X-Forwarded-Proto: https) the cookie is Secure and HSTS is sent.
    user.get("/login", headers={"X-Forwarded-Proto": "https"})
    r = user.post("/login", {"username": make_account("X00004", ["reception"]), "password": "Test-password-2026",
                             "next": "/app"}, headers={"X-Forwarded-Proto": "https"})
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("kntc_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_form_without_csrf_token_is_refused(web_officer):
    user = web_officer("X00004", ["reception"])
    r = user.post("/app/reception", {"visitor_name": "Lê Văn C", "content": "x"}, csrf=False)
    assert r.status_code == 403
    assert "Biểu mẫu đã hết hạn" in r.text


def test_login_failure_shows_one_message_and_keeps_the_username(web, make_account):
    user = web()
    user.get("/login")
    name = make_account("X00004", ["reception"])
    r = user.post("/login", {"username": name, "password": "wrong-password-1"})
    assert r.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in r.text and f'value="{name}"' in r.text
    r2 = user.post("/login", {"username": "no.such.user", "password": "wrong-password-1"})
    assert r2.status_code == 401 and "Tên đăng nhập hoặc mật khẩu không đúng" in r2.text


def test_logout_ends_the_session(web_officer):
    user = web_officer("X00004", ["reception"])
    assert user.get("/app").status_code == 200
    r = user.post("/logout")
    assert r.status_code == 303
    r = user.get("/app")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_without_session_officer_pages_redirect_to_login(web):
    r = web().get("/app/cases/X00004-2026-000001")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fapp%2Fcases")


def test_wrong_field_is_marked_and_nothing_typed_is_lost(web_officer):
    user = web_officer("X00004", ["reception"])
    user.get("/app/cases/new")
    r = user.post("/app/cases/new", {"party_role": "complainant", "party_full_name": "Phạm Văn Dũng",
                                     "party_id_number": "12345", "kind": "complaint", "channel": "letter",
                                     "subject": "Khiếu nại về bồi thường", "content": "Nội dung rất dài của đơn",
                                     "complaint_round": "1", "classification": "0", "people_count": "3"})
    assert r.status_code == 400
    assert 'id="err-party_id_number"' in r.text and "12 chữ số" in r.text
    for kept in ("Phạm Văn Dũng", "Khiếu nại về bồi thường", "Nội dung rất dài của đơn", 'value="3"'):
        assert kept in r.text
    assert '<option value="letter" selected>' in r.text


def test_officer_of_another_commune_cannot_open_the_case_by_url(web_officer):
    here = web_officer("X00004", ["reception"])
    code, _ = record_petition(here, subject="Khiếu nại riêng của phường Ba Đình")
    assert here.get(f"/app/cases/{code}").status_code == 200
    other = web_officer("X00008", ["head"], clearance=2)
    r = other.get(f"/app/cases/{code}")
    assert r.status_code == 404
    assert "Khiếu nại riêng của phường Ba Đình" not in r.text and "Trần Thị Bình" not in r.text
    assert other.get(f"/app/receipt/{code}").status_code == 404


def test_citizen_lookup_same_answer_for_wrong_code_and_wrong_secret(web_officer, web):
    officer = web_officer("X00004", ["reception"])
    code, secret = record_petition(officer)
    citizen = web()
    citizen.get("/lookup")
    ok = citizen.post("/lookup", {"code": code, "secret": secret.lower()})
    assert ok.status_code == 200 and "Đã tiếp nhận" in ok.text and "Trần Thị Bình" not in ok.text
    wrong_secret = citizen.post("/lookup", {"code": code, "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"})
    wrong_code = citizen.post("/lookup", {"code": code[:-1] + ("8" if code.endswith("9") else "9"), "secret": secret})
    assert wrong_secret.status_code == wrong_code.status_code == 404

    def message(r):
        return re.search(r'id="lookup-error">([^<]+)<', r.text).group(1)
    assert message(wrong_secret) == message(wrong_code)
    assert secret not in wrong_code.text  # the secret is never echoed into the page


def test_case_list_exports_csv_with_bom_and_xlsx(web_officer):
    user = web_officer("X00004", ["reception"])
    code, _ = record_petition(user)
    csv = user.get("/app/cases?scope=unit&format=csv")
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    text = csv.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Mã hồ sơ,") and code in text and "Khiếu nại" in text
    xlsx = user.get("/app/cases?scope=unit&format=xlsx")
    assert xlsx.status_code == 200
    ws = load_workbook(io.BytesIO(xlsx.content)).active
    assert ws.cell(1, 1).value == "Mã hồ sơ"
    assert code in [row[0] for row in ws.iter_rows(min_row=2, values_only=True)]


def test_statistics_of_a_commune_head_and_their_export(web_officer):
    reception = web_officer("X00004", ["reception"])
    record_petition(reception, kind="denunciation", subject="Tố cáo cán bộ địa chính")
    head = web_officer("X00004", ["head"], clearance=1)
    r = head.get("/app/stats")
    assert r.status_code == 200
    assert 'class="map"' in r.text and 'class="chart"' in r.text
    assert int(re.search(r'id="total-received">(\d+)<', r.text).group(1)) >= 1
    # Outside the head's area: refused, not silently empty.
    assert head.get("/app/stats?unit=X00008").status_code == 403
    csv = head.get("/app/stats?table=kind&format=csv")
    assert csv.status_code == 200 and "Tố cáo" in csv.content.decode("utf-8-sig")


def test_unknown_attachment_and_bad_ids_are_404_pages_not_500(web_officer):
    user = web_officer("X00004", ["reception"])
    code, _ = record_petition(user)
    assert user.get(f"/app/cases/{code}/files/not-a-uuid").status_code == 404
    assert user.get(f"/app/cases/{code}/files/00000000-0000-0000-0000-000000000000").status_code == 404
    assert user.get("/app/cases/NO-SUCH-CODE").status_code == 404


def test_language_switch_to_english(web_officer):
    user = web_officer("X00004", ["reception"])
    r = user.get("/lang/en?next=/app")
    assert r.status_code == 303 and r.headers["location"] == "/app"
    page = user.get("/app")
    assert 'lang="en"' in page.text and "Record a petition" in page.text
    assert user.get("/lang/en?next=https://evil.example/").headers["location"] == "/"



def test_every_screen_renders_for_its_role(web_officer):
    reception = web_officer("X00004", ["reception"])
    code, _ = record_petition(reception)
    screens = {
        ("reception",): ["/app", "/app/reception", "/app/cases/new", "/app/inbox", f"/app/cases/{code}",
                         "/app/cases", "/app/stats"],
        ("handling",): ["/app/inbox", f"/app/cases/{code}"],
        ("resolution",): ["/app/work", f"/app/cases/{code}"],
        ("head",): ["/app/overview", f"/app/cases/{code}", "/app/accounts", "/app/stats"],
        ("unit_admin",): ["/app/accounts", "/app/accounts?format=csv", "/app/accounts?format=xlsx"],
    }
    for roles, urls in screens.items():
        user = web_officer("X00004", list(roles), clearance=1)
        for url in urls:
            r = user.get(url)
            assert r.status_code == 200, (roles, url, r.text[-500:])
    # The national level: the map links each province to its drill-down, and the province table shows.
    national = web_officer("VN", ["head"], clearance=2)
    r = national.get("/app/stats")
    assert r.status_code == 200 and 'id="by-province"' in r.text and "unit=T01" in r.text
    r = national.get("/app/stats?unit=T01")
    assert r.status_code == 200 and "Thành phố Hà Nội" in r.text
    # A role that does not fit the screen gets a 403 page.
    assert reception.get("/app/overview").status_code == 403


def test_unit_admin_creates_an_account_and_mistakes_are_shown_by_field(web_officer, web):
    admin = web_officer("X00004", ["unit_admin"])
    admin.get("/app/accounts")
    r = admin.post("/app/accounts", {"username": "Bad Name!", "full_name": "Ngô Thị Hạnh", "unit": "X00004",
                                     "roles": "reception", "clearance": "0", "phone": "12"})
    assert r.status_code == 400 and 'id="err-username"' in r.text and "Ngô Thị Hạnh" in r.text
    assert 'name="password"' not in r.text  # the administrator no longer chooses a password
    import secrets
    name = f"tiepdan.{secrets.token_hex(3)}"
    r = admin.post("/app/accounts", {"username": name, "full_name": "Ngô Thị Hạnh", "unit": "X00004",
                                     "roles": "reception", "clearance": "0", "email": f"{name}@thanhtra.gov.vn",
                                     "phone": "0912345678"})
    assert r.status_code == 201, r.text
    initial = re.search(r'id="initial-password">([A-Z2-7-]+)<', r.text).group(1)
    assert f"{name}@thanhtra.gov.vn" in r.text and "+84912345678" in r.text
    # Shown once: the account's page does not show it again.
    assert initial not in admin.get(f"/app/accounts/{name}").text
    new = web()
    r = new.login(name, initial)
    assert r.status_code == 303 and r.headers["location"] == "/app/account/setup"
    # Not above the admin's own unit.
    r = admin.post("/app/accounts", {"username": name + "x", "full_name": "Ngô Thị Hạnh", "unit": "T01",
                                     "roles": "reception", "clearance": "0"})
    assert r.status_code == 400 and 'id="err-unit"' in r.text


def test_late_step_gets_its_cause_recorded_and_counted(web_officer):
    from datetime import timedelta

    reception = web_officer("X00004", ["reception"])
    long_ago = (vietnam_today() - timedelta(days=60)).isoformat()
    code, _ = record_petition(reception, received_on=long_ago, subject="Khiếu nại đã quá hạn thụ lý")
    head = web_officer("X00004", ["head"], clearance=1)
    page = head.get(f"/app/cases/{code}")
    assert "quá hạn" in page.text and 'action="/app/cases/' + code + '/overdue-cause"' in page.text
    r = head.post(f"/app/cases/{code}/overdue-cause", {"step": "accept", "cause": "Chờ hồ sơ địa chính từ huyện cũ"})
    assert r.status_code == 303
    assert "Chờ hồ sơ địa chính từ huyện cũ" in head.get(f"/app/cases/{code}").text
    stats = head.get(f"/app/stats?date_from={long_ago}")
    causes = stats.text.split('id="overdue-causes"')[1]
    assert "Chờ hồ sơ địa chính từ huyện cũ" in causes and "Luật Khiếu nại 2011, Điều 27" in causes
    overdue_csv = head.get("/app/overview?format=csv").content.decode("utf-8-sig")
    assert code in overdue_csv and "Chờ hồ sơ địa chính từ huyện cũ" in overdue_csv
    # A step that is not late cannot be given a cause.
    r = head.post(f"/app/cases/{code}/overdue-cause", {"step": "resolve", "cause": "không áp dụng"})
    assert r.status_code == 400 and "Bước này không quá hạn" in r.text


def test_bad_input_on_web_pages_gives_pages_not_json_or_500(web_officer):
    user = web_officer("X00004", ["reception"])
    for url, status in (("/app/cases?after=abc", 400), ("/app/no-such-page", 404),
                        ("/app/cases/new?reception=not-a-uuid", 200)):
        r = user.get(url)
        assert r.status_code == status, url
        assert r.headers["content-type"].startswith("text/html"), url
    user.get("/app/cases/new")
    r = user.post("/app/cases/new", {"reception_id": "not-a-uuid", "party_role": "complainant",
                                     "party_full_name": "Đỗ Văn Hải", "kind": "complaint", "channel": "letter",
                                     "subject": "Khiếu nại thử", "content": "Nội dung", "complaint_round": "1",
                                     "classification": "0", "people_count": "1"})
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("text/html")
    # The JSON API keeps its JSON errors.
    assert user.client.get("/api/cases?after=abc").headers["content-type"].startswith("application/json")


def test_court_reader_sees_its_provinces_cases_read_only(web_officer):
    reception = web_officer("X00004", ["reception"])
    code, _ = record_petition(reception, subject="Khiếu nại để tòa án tra cứu")
    court = web_officer("T01-TAND", ["external_reader"])
    home = court.get("/app")
    assert home.status_code == 200
    page = court.get(f"/app/cases/{code}")
    assert page.status_code == 200 and "Khiếu nại để tòa án tra cứu" in page.text
    assert 'action="/app/cases/' + code + '/action"' not in page.text
    assert court.get("/app/reception").status_code == 403


def _version(page_text: str) -> str:
    return re.search(r'name="version" value="(\d+)"', page_text).group(1)


def test_refused_action_shows_why_and_keeps_what_was_typed(web_officer):
    reception = web_officer("X00004", ["reception"])
    code, _ = record_petition(reception)
    handler = web_officer("X00004", ["handling"])
    page = handler.get(f"/app/cases/{code}")
    r = handler.post(f"/app/cases/{code}/action", {"action": "submit", "version": _version(page.text)})
    assert r.status_code == 303
    page = handler.get(f"/app/cases/{code}")
    stale = _version(page.text)
    r = handler.post(f"/app/cases/{code}/action", {"action": "forward", "version": stale, "target_unit": "T99-XX"})
    assert r.status_code == 409 and "Không tìm thấy đơn vị nhận" in r.text and 'value="T99-XX"' in r.text
    # Someone else acted meanwhile: a stale version is refused with a reason, nothing is lost.
    r = handler.post(f"/app/cases/{code}/action", {"action": "guide", "version": stale,
                                                   "note": "Hướng dẫn đến Tòa án nhân dân"})
    assert r.status_code == 303
    r = handler.post(f"/app/cases/{code}/action", {"action": "accept", "version": stale})
    assert r.status_code == 409 and "action-error" in r.text


def test_second_petition_joins_the_case_and_code_search_opens_it(web_officer):
    reception = web_officer("X00004", ["reception"])
    code, _ = record_petition(reception)
    reception.get(f"/app/cases/{code}")
    r = reception.post(f"/app/cases/{code}/petitions", {"channel": "letter", "content": "", "people_count": "4"})
    assert r.status_code == 400 and 'id="err-content"' in r.text and 'value="4"' in r.text
    r = reception.post(f"/app/cases/{code}/petitions", {"channel": "letter", "people_count": "4",
                                                        "content": "Đơn gửi lần hai cùng nội dung"})
    assert r.status_code == 303
    page = reception.get(f"/app/cases/{code}")
    assert "Đơn gửi lần hai cùng nội dung" in page.text and "4 người" in page.text
    r = reception.get("/app/cases", params={"q": code.lower()})
    assert r.status_code == 303 and r.headers["location"] == f"/app/cases/{code}"
