"""The administrators' account pages: the directory with its filters and exports, an account's page
and its actions, the roster upload and the one-time passwords file; tried also as an administrator
of another unit, with a forged form, and as another administrator after the passwords file.

Threat rows (runbooks/security.md): T48, T49, T50, T52.
"""

from __future__ import annotations

import io
import re
import secrets

from openpyxl import load_workbook

INITIAL = re.compile(r'id="initial-password">([A-Z2-7-]+)<')
HEADER = "ma_don_vi,ho_ten,ten_dang_nhap,vai_tro,muc_mat,email,dien_thoai\n"


def roster(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


def upload(admin, data: bytes, mode: str = "check", reason: str = "Triển khai: danh sách cán bộ đợt 1", **kw):
    return admin.post("/app/accounts/import", {"reason": reason, "mode": mode},
                      files={"file": ("danh-sach.csv", data, "text/csv")}, **kw)


def action(admin, username: str, name: str, reason: str = "Theo quyết định điều động", **fields):
    admin.get(f"/app/accounts/{username}")
    return admin.post(f"/app/accounts/{username}/action", {"action": name, "reason": reason, **fields})


def test_the_directory_searches_filters_and_exports_what_it_shows(web_officer, make_account, owner_conn):
    admin = web_officer("T01", ["unit_admin"], clearance=1)
    t = secrets.token_hex(3)
    stale = make_account("X00004", ["reception"], prefix=f"cu{t}")
    fresh = make_account("X00004", ["reception"], prefix=f"moi{t}")
    owner_conn.execute("UPDATE kntc.account SET created_at = now() - interval '200 days' WHERE username = %s",
                       (stale,))
    r = admin.get("/app/accounts", params={"q": t})
    assert r.status_code == 200 and stale in r.text and fresh in r.text
    assert f'href="/app/accounts/{stale}"' in r.text
    r = admin.get("/app/accounts", params={"q": t, "stale": "1"})
    assert stale in r.text and fresh not in r.text
    assert re.search(r'href="/app/accounts\?[^"]*stale=1[^"]*format=csv', r.text.replace("&amp;", "&"))
    csv = admin.get("/app/accounts", params={"q": t, "stale": "1", "format": "csv"})
    text = csv.content.decode("utf-8-sig")
    assert csv.status_code == 200 and stale in text and fresh not in text
    assert text.splitlines()[0].startswith("Tên đăng nhập,")
    xlsx = admin.get("/app/accounts", params={"q": t, "state": "disabled", "format": "xlsx"})
    rows = list(load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))
    assert len(rows) == 1  # the header only: neither is disabled
    # Another province's administrator: the same search finds nothing, in the page or the export.
    far = web_officer("T79", ["unit_admin"], clearance=1)
    assert stale not in far.get("/app/accounts", params={"q": t}).text
    assert stale not in far.get("/app/accounts", params={"q": t, "format": "csv"}).content.decode("utf-8-sig")


def test_an_administrator_changes_an_account_with_a_reason(web_officer, web, make_account):
    admin = web_officer("X00004", ["unit_admin"], clearance=1)
    name = make_account("X00004", ["reception"])
    clerk = web()
    assert clerk.login(name).status_code == 303
    page = admin.get(f"/app/accounts/{name}")
    assert page.status_code == 200 and 'id="account-facts"' in page.text and 'id="action-disable"' in page.text
    assert "Hoạt động" in page.text
    # Without a reason: refused at the reason, nothing changes.
    r = action(admin, name, "disable", reason="")
    assert r.status_code == 400 and 'id="err-reason"' in r.text
    assert clerk.get("/app").status_code == 200
    r = action(admin, name, "disable", reason="Nghỉ hưu theo chế độ")
    assert r.status_code == 303 and r.headers["location"] == f"/app/accounts/{name}?done=disable"
    page = admin.get(r.headers["location"])
    assert "Ngừng hoạt động" in page.text and 'id="action-enable"' in page.text
    assert clerk.get("/app").status_code == 303  # the open session ended with the account
    assert action(admin, name, "enable", reason="Tái tuyển dụng").status_code == 303
    # Above what a commune's administrator may grant: the reason is shown, the roles stay.
    r = action(admin, name, "set_roles", roles=["reception", "head"])
    assert r.status_code == 403 and "Không được cấp vai trò" in r.text and 'checked> Thủ trưởng' in r.text
    r = action(admin, name, "set_roles", roles=["reception", "handling"])
    assert r.status_code == 303
    assert "Xử lý đơn" in admin.get(f"/app/accounts/{name}").text
    r = action(admin, name, "set_clearance", clearance="2")
    assert r.status_code == 403
    # A reset shows the new initial password once, and it opens the setup.
    r = action(admin, name, "reset_password", reason="Cán bộ quên mật khẩu")
    assert r.status_code == 200
    initial = INITIAL.search(r.text).group(1)
    assert initial not in admin.get(f"/app/accounts/{name}").text
    again = web()
    r = again.login(name, initial)
    assert r.headers["location"] == "/app/account/setup"
    assert "mật khẩu ban đầu, chưa đổi" in admin.get(f"/app/accounts/{name}").text
    r = action(admin, name, "end_sessions", reason="Nghi lộ mật khẩu")
    assert r.status_code == 303
    assert again.get("/app/account/setup").status_code == 303  # its setup session ended too
    r = action(admin, name, "reset_factor", reason="Mất điện thoại")
    assert r.status_code == 200 and INITIAL.search(r.text)
    # The same page in English: every label and button.
    admin.get(f"/lang/en?next=/app/accounts/{name}")
    main = admin.get(f"/app/accounts/{name}").text.split("<main>")[1]
    for label in ("Reset the second factor", "Reason", "Open sessions", "initial password, not changed yet",
                  "End every session"):
        assert label in main, label
    assert not {"Lý do", "Ngừng hoạt động", "Mật khẩu"} & set(re.findall(r">([^<]+)<", main))


def test_another_units_administrator_gets_not_found_for_an_account_outside_their_area(web_officer, make_account,
                                                                                       owner_conn):
    name = make_account("X00004", ["reception"])
    other = web_officer("X00008", ["unit_admin"], clearance=1)
    outside = other.get(f"/app/accounts/{name}")
    missing = other.get("/app/accounts/khong.co.ai")
    assert outside.status_code == missing.status_code == 404
    message = re.compile(r'class="msg-error">([^<]+)<')
    assert message.search(outside.text).group(1) == message.search(missing.text).group(1)
    assert "Cán bộ " + name not in outside.text
    for name_, fields in (("disable", {}), ("reset_password", {}), ("set_roles", {"roles": ["handling"]})):
        r = action(other, name, name_, **fields)
        assert r.status_code == 404 and message.search(r.text).group(1) == message.search(missing.text).group(1)
    row = owner_conn.execute("SELECT is_active, roles, must_change_password FROM kntc.account WHERE username = %s",
                             (name,)).fetchone()
    assert row["is_active"] and row["roles"] == ["reception"] and not row["must_change_password"]
    # A forged form (no token) from the account's own administrator changes nothing either.
    admin = web_officer("X00004", ["unit_admin"], clearance=1)
    admin.get(f"/app/accounts/{name}")
    r = admin.post(f"/app/accounts/{name}/action", {"action": "disable", "reason": "Giả mạo biểu mẫu"}, csrf=False)
    assert r.status_code == 403
    assert owner_conn.execute("SELECT is_active FROM kntc.account WHERE username = %s", (name,)).fetchone()["is_active"]
    # Officers who are not administrators do not open account pages.
    head = web_officer("X00004", ["head"], clearance=1)
    assert head.get(f"/app/accounts/{name}").status_code == 403
    assert f'href="/app/accounts/{name}"' not in head.get("/app/accounts").text


def test_a_roster_is_checked_corrected_imported_and_its_passwords_downloaded_once(web_officer, owner_conn):
    admin = web_officer("T01", ["unit_admin"], clearance=1)
    page = admin.get("/app/accounts/import")
    assert page.status_code == 200 and 'id="roster-columns"' in page.text
    for column in ("ma_don_vi", "unit_code", "ten_dang_nhap", "vai_tro", "dien_thoai"):
        assert column in page.text
    t = secrets.token_hex(3)
    bad = roster(f"X00004,Nguyễn Văn An,an.{t},tiep_dan,0,an.{t}@thanhtra.gov.vn,0912345678",
                 f"XKHONGCO,Lê Văn Cường,cuong.{t},handling,0,,",
                 f"X00004,Phạm Thị Dung,dung.{t},giam_doc,0,khong-phai-email,")
    r = upload(admin, bad)
    assert r.status_code == 400 and 'id="import-errors"' in r.text
    table = r.text.split('id="import-errors"')[1].split("</table>")[0]
    assert re.findall(r'<td class="num">(\d+)</td>', table) == ["3", "4", "4"]
    assert "XKHONGCO" in table and "giam_doc" in table
    # The English page gives the English reasons.
    admin.get("/lang/en?next=/app/accounts/import")
    r = upload(admin, bad)
    assert "Unknown role(s): giam_doc." in r.text.split('id="import-errors"')[1].split("</table>")[0]
    admin.get("/lang/vi?next=/app/accounts/import")
    good = roster(f"X00004,Nguyễn Văn An,an.{t},tiep_dan,0,an.{t}@thanhtra.gov.vn,0912345678",
                  f"X00008,Lê Văn Cường,cuong.{t},handling,0,,",
                  f"X00004,Phạm Thị Dung,dung.{t},xu_ly,1,,")
    r = upload(admin, good)
    assert r.status_code == 200 and 'id="import-checked"' in r.text and 'id="credentials-link"' not in r.text
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username LIKE %s",
                              (f"%.{t}",)).fetchone()["n"] == 0
    # Without its token the upload is refused.
    assert upload(admin, good, mode="import", csrf=False).status_code == 403
    # The checked file is kept for this administrator: "Import" needs no second upload, and the
    # handle is no use to another administrator, nor as a download.
    checked = re.search(r'name="checked" value="([0-9a-f-]{36})"', r.text).group(1)
    from_checked = {"reason": "Triển khai: danh sách cán bộ đợt 1", "mode": "import", "checked": checked}
    other = web_officer("T01", ["unit_admin"], clearance=1)
    assert other.post("/app/accounts/import", from_checked).status_code == 400
    assert admin.get(f"/app/accounts/import/{checked}/credentials").status_code == 404
    assert admin.post("/app/accounts/import", {**from_checked, "checked": "not-a-handle"}).status_code == 400
    r = admin.post("/app/accounts/import", {**from_checked, "checked": checked})
    assert r.status_code == 200 and 'id="import-done"' in r.text
    again = admin.post("/app/accounts/import", {**from_checked, "checked": checked})
    assert again.status_code == 400 and 'id="err-file"' in again.text  # once
    assert f'href="/app/accounts/an.{t}"' in r.text
    link = re.search(r'href="(/app/accounts/import/[0-9a-f-]{36}/credentials)"', r.text).group(1)
    # Another administrator, even of the same province, gets nothing, and does not use it up.
    assert other.get(link).status_code == 404
    got = admin.get(link)
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    lines = got.content.decode("utf-8-sig").strip().splitlines()
    assert lines[0] == "username,full_name,unit_code,initial_password" and len(lines) == 4
    assert admin.get(link).status_code == 404  # once
    # The same file again creates nothing.
    r = upload(admin, good, mode="import")
    assert r.status_code == 200 and 'id="import-unchanged"' in r.text and 'id="credentials-link"' not in r.text
    # Not a roster at all: one clear error.
    r = admin.post("/app/accounts/import", {"reason": "Thử tệp hỏng", "mode": "check"},
                   files={"file": ("x.csv", b"\x00\x01binary", "text/csv")})
    assert r.status_code == 400 and 'id="err-file"' in r.text


def test_an_officer_who_is_not_an_administrator_cannot_import(web_officer):
    head = web_officer("X00004", ["head"], clearance=1)
    assert head.get("/app/accounts/import").status_code == 403
    r = upload(head, roster("X00004,Kẻ Mạo Danh,,tiep_dan,0,,"), mode="import")
    assert r.status_code == 403
