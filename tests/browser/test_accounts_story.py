"""Accounts in a real browser: an administrator imports a roster (a wrong file first), downloads the
initial passwords; one of the new officers, cleared for classified content, sets up the account at
the first login (password, then the second factor read off the page) and later logs in with a code."""

from __future__ import annotations

import hashlib
import secrets
import time

import pyotp
import pytest

pytestmark = pytest.mark.browser

HEADER = "ma_don_vi,ho_ten,ten_dang_nhap,vai_tro,muc_mat,email,dien_thoai\n"
NEW_PASSWORD = "cây đa đầu làng 27 mùa lúa"


def csv_file(*rows: str) -> dict[str, object]:
    return {"name": "danh-sach-can-bo.csv", "mimeType": "text/csv", "buffer": (HEADER + "\n".join(rows) + "\n").encode()}


def send(page, file: dict[str, object], button: str) -> None:
    page.set_input_files("#f-file", files=[file])
    with page.expect_navigation():
        page.click(button)


def test_roster_import_then_the_new_officers_first_login_and_second_factor(open_as, shots, tmp_path):
    t = secrets.token_hex(3)
    officer = f"mai.{t}"

    # 1. The province's administrator: a roster with mistakes, the errors by line, the corrected file.
    admin = open_as("T01", ["unit_admin"], clearance=1)
    assert "hãy đăng ký trước" in admin.inner_text("#factor-reminder")  # its own factor is due
    admin.click("nav.menu >> text=Tài khoản")
    admin.click("text=Nhập danh sách tài khoản từ tệp")
    admin.wait_for_url("**/app/accounts/import")
    assert admin.locator("#roster-columns tbody tr").count() == 7
    admin.fill("#f-reason", "Triển khai tỉnh Hà Nội: cán bộ đợt 1")
    wrong = csv_file(f"X00004,Lê Thị Mai,{officer},xu_ly,1,mai.{t}@thanhtra.gov.vn,0912345678",
                     f"X0004,Trần Văn Nam,nam.{t},tiep_dan,0,,",
                     f"X00008,Đỗ Thị Oanh,oanh.{t},giai_quyet;giam_doc,0,oanh@,")
    send(admin, wrong, "#import-check")
    errors = admin.inner_text("#import-errors")
    assert "X0004" in errors and "giam_doc" in errors
    assert [c.inner_text() for c in admin.locator("#import-errors td.num").all()] == ["3", "4", "4"]
    admin.screenshot(path=str(shots / "accounts-import-errors.png"), full_page=True)

    fixed = csv_file(f"X00004,Lê Thị Mai,{officer},xu_ly,1,mai.{t}@thanhtra.gov.vn,0912345678",
                     f"X00004,Trần Văn Nam,nam.{t},tiep_dan,0,,",
                     f"X00008,Đỗ Thị Oanh,oanh.{t},giai_quyet,0,oanh.{t}@thanhtra.gov.vn,")
    send(admin, fixed, "#import-check")
    assert "không có lỗi" in admin.inner_text("#import-checked")
    assert "phiên đăng nhập này" in admin.inner_text("#import-kept")
    checked_digest = admin.inner_text("#import-sha256")
    assert checked_digest == hashlib.sha256(fixed["buffer"]).hexdigest()
    admin.screenshot(path=str(shots / "accounts-import-checked.png"), full_page=True)
    with admin.expect_navigation():  # the checked file is kept: no second upload
        admin.click("#import-checked-run")
    assert "tạo 3 tài khoản" in admin.inner_text("#import-done")
    assert admin.inner_text("#import-sha256") == checked_digest  # the very bytes checked
    admin.screenshot(path=str(shots / "accounts-import-done.png"), full_page=True)
    with admin.expect_download() as dl:
        admin.click("#credentials-link")
    path = tmp_path / "mat-khau-ban-dau.csv"
    dl.value.save_as(path)
    rows = [line.split(",") for line in path.read_text(encoding="utf-8-sig").strip().splitlines()]
    assert rows[0] == ["username", "full_name", "unit_code", "initial_password"]
    initial = {r[0]: r[3] for r in rows[1:]}
    assert set(initial) == {officer, f"nam.{t}", f"oanh.{t}"}
    # The new account's page: on its initial password, its factor still to enrol.
    with admin.expect_navigation():
        admin.click(f"#import-created >> text={officer}")
    assert "mật khẩu ban đầu, chưa đổi" in admin.inner_text("#account-facts")
    assert "bắt buộc, chưa đăng ký" in admin.inner_text("#account-factor")
    admin.screenshot(path=str(shots / "account-detail.png"), full_page=True)

    # 2. The officer: the initial password opens the setup and nothing else.
    page = open_as()
    page.goto("/login")
    page.fill("#f-username", officer)
    page.fill("#f-password", initial[officer])
    page.click("button[type=submit]")
    page.wait_for_url("**/app/account/setup")
    page.screenshot(path=str(shots / "account-setup-password.png"), full_page=True)
    page.goto("/app/cases")
    page.wait_for_url("**/app/account/setup")
    page.fill("#f-current_password", initial[officer])
    page.fill("#f-new_password", NEW_PASSWORD)
    page.fill("#f-confirm_password", NEW_PASSWORD)
    with page.expect_navigation():
        page.click("#password-form button[type=submit]")
    assert page.locator("#factor-start-form").count() == 1
    page.screenshot(path=str(shots / "account-setup-factor-start.png"), full_page=True)
    page.fill("#factor-start-form #f-password", NEW_PASSWORD)
    with page.expect_navigation():
        page.click("#factor-start-form button[type=submit]")
    assert page.locator("#factor-qr svg").count() == 1
    page.screenshot(path=str(shots / "account-setup-factor.png"), full_page=True)
    # The phone's app, typed in by hand from the key under the QR code.
    totp = pyotp.TOTP(page.inner_text("#factor-secret").replace(" ", "").strip())
    page.fill("#f-code", totp.now())
    with page.expect_navigation():
        page.click("#factor-confirm-form button[type=submit]")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and "một lần" in page.inner_text("p.msg-warn")
    page.screenshot(path=str(shots / "account-setup-recovery.png"), full_page=True)
    with page.expect_navigation():
        page.click("#recovery-saved")
    assert page.url.endswith("/app")
    page.screenshot(path=str(shots / "account-setup-done-home.png"), full_page=True)

    # 3. Next time: the password alone asks for the code; with it, in.
    with page.expect_navigation():
        page.click("header .who button")
    page.fill("#f-username", officer)
    page.fill("#f-password", NEW_PASSWORD)
    page.click("button[type=submit]")
    assert "mã xác thực 6 số" in page.inner_text("#login-error")
    page.screenshot(path=str(shots / "login-code-required.png"), full_page=True)
    page.fill("#f-password", NEW_PASSWORD)
    page.fill("#f-code", totp.at(time.time() + 30))  # the next code: the one used to enrol is spent
    page.click("button[type=submit]")
    page.wait_for_url("**/app")
    page.goto("/app/account")
    assert "Đã đăng ký" in page.inner_text("#factor-state")
    assert page.locator("#sessions tr.current").count() == 1
    page.screenshot(path=str(shots / "account-own-page.png"), full_page=True)


def test_a_checked_file_kept_too_long_is_checked_again_not_imported(open_as, owner_conn, shots):
    """The kept file of a check made more than 30 minutes ago: the administrator is told to check it
    again, and nothing is created."""
    t = secrets.token_hex(3)
    admin = open_as("T01", ["unit_admin"], clearance=1)
    admin.goto("/app/accounts/import")
    admin.fill("#f-reason", "Bổ sung cán bộ xã đợt 3")
    send(admin, csv_file(f"X00004,Vũ Văn Khoa,khoa.{t},tiep_dan,0,,"), "#import-check")
    handle = admin.get_attribute("#import-checked-form input[name=checked]", "value")
    owner_conn.execute("UPDATE kntc.roster_checked SET expires_at = now() - interval '1 minute' WHERE id = %s",
                       (handle,))
    with admin.expect_navigation():
        admin.click("#import-checked-run")
    assert "quá 30 phút" in admin.inner_text("#err-file")
    admin.screenshot(path=str(shots / "accounts-import-kept-expired.png"), full_page=True)
    assert owner_conn.execute("SELECT count(*) AS n FROM kntc.account WHERE username = %s",
                              (f"khoa.{t}",)).fetchone()["n"] == 0
