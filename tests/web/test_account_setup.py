"""The officer's own account in the pages: the first login's setup (password, second factor, recovery
codes), the login with a code, the account page with its sessions; and what a setup session, a
forged form or another officer's session handle cannot do.

Threat rows (runbooks/security.md): T51, T52, T53, T54.
"""

from __future__ import annotations

import re
import secrets
import time

import pyotp

INITIAL = re.compile(r'id="initial-password">([A-Z2-7-]+)<')
SECRET = re.compile(r'id="factor-secret">([A-Z2-7 ]+)<')
RECOVERY = re.compile(r"<li>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</li>")
STRONG = "ngựa-vằn đi xe đạp 42 lần"


def new_officer(admin, roles: tuple[str, ...] = ("handling",), clearance: int = 1) -> tuple[str, str]:
    """An account made in the administrator's page; returns (username, initial password)."""
    name = f"moi.{secrets.token_hex(4)}"
    admin.get("/app/accounts")
    r = admin.post("/app/accounts", {"username": name, "full_name": "Lê Thị Mai", "unit": "X00004",
                                     "roles": list(roles), "clearance": str(clearance)})
    assert r.status_code == 201, r.text
    return name, INITIAL.search(r.text).group(1)


def enrol(user, password: str) -> tuple[pyotp.TOTP, list[str], str]:
    """Through the pages: the password, the secret read off the page, a code; (totp, codes, next link)."""
    r = user.post("/app/account/factor/begin", {"password": password})
    assert r.status_code == 200 and '<svg' in r.text and 'id="factor-qr"' in r.text, r.text
    totp = pyotp.TOTP(SECRET.search(r.text).group(1).replace(" ", ""))
    r = user.post("/app/account/factor/confirm", {"code": totp.now()})
    assert r.status_code == 200, r.text
    codes = RECOVERY.findall(r.text)
    return totp, codes, re.search(r'href="([^"]+)" id="recovery-saved"', r.text).group(1)


def test_first_login_sets_up_the_password_and_the_factor_then_logs_in_with_a_code(web_officer, web):
    admin = web_officer("X00004", ["unit_admin"], clearance=1)
    name, initial = new_officer(admin)
    user = web()
    r = user.login(name, initial)
    assert r.status_code == 303 and r.headers["location"] == "/app/account/setup"
    page = user.get("/app/account/setup")
    assert page.status_code == 200 and "Đổi mật khẩu ban đầu" in page.text and 'id="password-form"' in page.text
    assert 'action="/logout"' in page.text  # a setup session may log out
    # Each mistake shows at its field.
    for form, field in (({"current_password": initial, "new_password": STRONG, "confirm_password": STRONG + "x"},
                         "confirm_password"),
                        ({"current_password": "sai-mat-khau", "new_password": STRONG, "confirm_password": STRONG},
                         "current_password"),
                        ({"current_password": initial, "new_password": "Password123",
                          "confirm_password": "Password123"}, "new_password"),
                        ({"current_password": initial, "new_password": "", "confirm_password": ""}, "new_password")):
        r = user.post("/app/account/password", form)
        assert r.status_code == 400 and f'id="err-{field}"' in r.text, (field, r.text[-800:])
        assert STRONG not in r.text and initial not in r.text.split("<main>")[1]
    r = user.post("/app/account/password", {"current_password": initial, "new_password": STRONG,
                                            "confirm_password": STRONG})
    assert r.status_code == 303 and r.headers["location"] == "/app/account/setup"  # the factor is still to do
    page = user.get("/app/account/setup")
    assert 'id="factor-start-form"' in page.text and 'class="done"' in page.text
    r = user.post("/app/account/factor/begin", {"password": initial})
    assert r.status_code == 400 and 'id="err-password"' in r.text
    r = user.post("/app/account/factor/begin", {"password": STRONG})
    secret = SECRET.search(r.text).group(1).replace(" ", "")
    r = user.post("/app/account/factor/confirm", {"code": "000000"})
    assert r.status_code == 400 and 'id="err-code"' in r.text and 'id="factor-confirm-form"' in r.text
    totp = pyotp.TOTP(secret)
    r = user.post("/app/account/factor/confirm", {"code": totp.now()})
    assert r.status_code == 200
    codes = RECOVERY.findall(r.text)
    assert len(codes) == 10 and "chỉ hiện chúng một lần" in r.text
    assert re.search(r'href="/app" id="recovery-saved"', r.text)
    assert user.get("/app").status_code == 200
    assert user.get("/app/account/setup").headers["location"] == "/app/account"

    # Later logins: the password alone asks for the code; a wrong code, the right one, a recovery code.
    user.post("/logout")
    again = web()
    r = again.login(name, STRONG)
    assert r.status_code == 401 and "mã xác thực 6 số" in r.text and 'id="f-code"' in r.text
    assert again.login(name, STRONG, "123456").status_code == 401
    r = again.login(name, STRONG, totp.at(time.time() + 30))
    assert r.status_code == 303 and r.headers["location"] == "/app"
    assert web().login(name, STRONG, codes[0].upper()).status_code == 303
    assert web().login(name, STRONG, codes[0]).status_code == 401


def test_english_login_page_shows_the_english_refusal(web, owner_conn, make_account):
    name = make_account("X00004", ["handling"], clearance=1)
    # Past its time to enrol: the password alone is refused, and a code would not help.
    owner_conn.execute("UPDATE kntc.account SET factor_due_at = now() - interval '1 day' WHERE username = %s",
                       (name,))
    user = web()
    user.get("/lang/en?next=/login")
    r = user.login(name)
    assert r.status_code == 403 and 'lang="en"' in r.text
    assert "This account needs a second factor" in r.text and "Authentication code" in r.text


def test_a_setup_session_opens_nothing_but_its_setup(web_officer, web):
    admin = web_officer("X00004", ["unit_admin"], clearance=1)
    name, initial = new_officer(admin, ("reception",), 0)
    user = web()
    user.login(name, initial)
    for url in ("/app", "/app/cases", "/app/accounts", "/app/account", "/app/reception", "/app/stats",
                f"/app/accounts/{name}", "/app/accounts/import"):
        r = user.get(url)
        assert r.status_code == 303 and r.headers["location"] == "/app/account/setup", url
    r = user.post("/app/reception", {"visitor_name": "Lê Văn C", "content": "Thử ghi khi chưa đổi mật khẩu"})
    assert r.status_code == 303 and r.headers["location"] == "/app/account/setup"
    assert user.post("/app/account/sessions/end", {"handle": "0" * 18}).headers["location"] == "/app/account/setup"
    # The API behind the same cookie says the same.
    assert user.client.get("/api/cases").json()["error"] == "setup_required"
    # Without the form's token nothing changes.
    r = user.post("/app/account/password", {"current_password": initial, "new_password": STRONG,
                                            "confirm_password": STRONG}, csrf=False)
    assert r.status_code == 403
    r = user.post("/app/account/password", {"current_password": initial, "new_password": STRONG,
                                            "confirm_password": STRONG})
    # Nothing else to set up (no factor needed at clearance 0): the session is a full one now.
    assert r.status_code == 303 and r.headers["location"] == "/app"
    assert user.get("/app").status_code == 200


def test_without_a_session_the_setup_asks_for_a_login(web):
    r = web().get("/app/account/setup")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fapp%2Faccount%2Fsetup")


def test_the_account_page_lists_the_sessions_and_ends_another(web_officer, web, make_account):
    name = make_account("X00004", ["handling"])
    laptop, phone = web(), web()
    assert laptop.login(name).status_code == 303 and phone.login(name).status_code == 303
    page = laptop.get("/app/account")
    assert page.status_code == 200 and name in page.text
    assert page.text.count('class="current"') == 1 and "Phiên này" in page.text
    handles = re.findall(r'name="handle" value="([0-9a-f]{18})"', page.text)
    assert len(handles) == 1  # the other session only: this one has no button
    # A forged form (no token) is refused; another officer cannot end this officer's session.
    assert laptop.post("/app/account/sessions/end", {"handle": handles[0]}, csrf=False).status_code == 403
    stranger = web_officer("X00004", ["handling"])
    stranger.get("/app/account")
    assert stranger.post("/app/account/sessions/end", {"handle": handles[0]}).status_code == 404
    assert phone.get("/app").status_code == 200
    r = laptop.post("/app/account/sessions/end", {"handle": handles[0]})
    assert r.status_code == 303
    assert "Đã kết thúc phiên" in laptop.get(r.headers["location"]).text
    r = phone.get("/app")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert laptop.post("/app/account/sessions/end", {"handle": "not-a-handle"}).status_code == 404


def test_a_full_session_changes_its_password_and_enrols_from_the_account_page(web, make_account):
    name = make_account("X00004", ["unit_admin"], clearance=1)
    user = web()
    user.login(name)
    home = user.get("/app")
    assert 'id="factor-reminder"' in home.text and "hãy đăng ký trước" in home.text
    page = user.get("/app/account")
    assert 'id="factor-reminder"' in page.text and "Bắt buộc, chưa đăng ký" in page.text
    r = user.post("/app/account/password", {"current_password": "Test-password-2026", "new_password": STRONG,
                                            "confirm_password": "khác hẳn"})
    assert r.status_code == 400 and 'id="err-confirm_password"' in r.text and 'id="sessions"' in r.text
    r = user.post("/app/account/factor/begin", {"password": "sai"})
    assert r.status_code == 400 and "Mật khẩu hiện tại không đúng" in r.text
    _, codes, next_url = enrol(user, "Test-password-2026")
    assert len(codes) == 10 and next_url == "/app/account"
    page = user.get("/app/account")
    assert "Đã đăng ký" in page.text and 'id="factor-reminder"' not in page.text
    assert 'id="factor-reminder"' not in user.get("/app").text
    user.get("/lang/en?next=/app/account")
    main = user.get("/app/account").text.split("<main>")[1]
    for label in ("My account", "Change your password", "Enrol again", "Your sessions", "This session"):
        assert label in main, label
    r = user.post("/app/account/password", {"current_password": "Test-password-2026", "new_password": STRONG,
                                            "confirm_password": STRONG})
    assert r.status_code == 303 and r.headers["location"] == "/app/account?done=password"


def test_a_borrowed_session_cannot_guess_the_current_password(web, make_account):
    user = web()
    user.login(make_account("X00004", ["handling"]))
    user.get("/app/account")
    statuses = []
    while 429 not in statuses and len(statuses) < 8:
        r = user.post("/app/account/password", {"current_password": f"doan-thu-{len(statuses)}",
                                                "new_password": STRONG, "confirm_password": STRONG})
        statuses.append(r.status_code)
    # Counted like failed logins: a few tries, then a wait before any password is checked.
    assert statuses[:3] == [400] * 3 and statuses[-1] == 429, statuses
    assert "thử lại" in r.text and 'id="password-form"' in r.text
    r = user.post("/app/account/factor/begin", {"password": "Test-password-2026"})
    assert r.status_code == 429 and 'id="err-password"' in r.text
