"""Editing a deadline rule by a central system administrator, on the rules page and with
`kntc deadlines rules edit`: a new version with its legal basis, reason and effective date, which the
running server (both its workers) counts by from the next request, without a restart."""

from __future__ import annotations

import os
import subprocess

import pytest

from core_app.app import vietnam_today
from core_app.domain.deadlines import Calendar
from tests.conftest import BIN, TEST_PASSWORD, petition_body

RULE = "KNPA-ACCEPT"
BASIS = "Thông tư 05/2021/TT-TTCP (xử lý đơn)"


@pytest.fixture
def calendar(owner_conn) -> Calendar:
    return Calendar({r["day"]: r["is_working"] for r in owner_conn.execute(
        "SELECT day, is_working FROM kntc.calendar_override").fetchall()})


def _accept_due(clerk) -> str:
    r = clerk.post("/api/cases", json=petition_body(kind="recommendation", parties=[
        {"role": "petitioner", "full_name": "Hà Văn Kiến"}]))
    assert r.status_code == 201, r.text
    return next(d["due_on"] for d in clerk.get(f"/api/cases/{r.json()['code']}").json()["deadlines"]
                if d["step"] == "accept")


def _days(owner_conn) -> int:
    return owner_conn.execute("SELECT days FROM kntc.deadline_rule WHERE code = %s", (RULE,)).fetchone()["days"]


def _cli(*args: str, password: str = TEST_PASSWORD) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kntc"), "deadlines", "rules", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "KNTC_PASSWORD": password})


def test_the_central_administrator_edits_a_rule_on_the_page_and_the_running_server_counts_by_it(
        web_officer, officer, owner_conn, calendar):
    admin = web_officer("VN", ["sysadmin"])
    clerk = officer("X00004", ["reception"])
    today = vietnam_today()
    assert _days(owner_conn) == 10
    page = admin.get("/app/deadline-rules")
    assert page.status_code == 200 and f'id="rule-{RULE}"' in page.text and 'class="rule-form"' in page.text
    r = admin.post(f"/app/deadline-rules/{RULE}", {
        "effective_from": today.isoformat(), "days": "13", "legal_basis": BASIS + " (bản thử trên trang)",
        "reason": "Thử sửa thời hạn trên trang quản trị"})
    assert r.status_code == 303, r.text[-500:]
    try:
        # Both workers of the running server count the next cases by the new version.
        assert {_accept_due(clerk) for _ in range(4)} == {calendar.add_working_days(today, 13).isoformat()}
        page = admin.get("/app/deadline-rules").text
        assert "Thử sửa thời hạn trên trang quản trị" in page and "(bản thử trên trang)" in page
    finally:
        r = admin.post(f"/app/deadline-rules/{RULE}", {"effective_from": today.isoformat(), "days": "10",
                                                         "legal_basis": BASIS, "reason": "Trả lại thời hạn như cũ"})
        assert r.status_code == 303
    assert _accept_due(clerk) == calendar.add_working_days(today, 10).isoformat()


def test_a_version_without_basis_or_reason_is_shown_back_and_not_kept(web_officer, owner_conn):
    admin = web_officer("VN", ["sysadmin"])
    admin.get("/app/deadline-rules")
    before = owner_conn.execute("SELECT count(*) AS n FROM kntc.deadline_rule_version WHERE code = %s",
                                (RULE,)).fetchone()["n"]
    for form in ({"effective_from": vietnam_today().isoformat(), "days": "12", "legal_basis": "", "reason": "Lý do đủ dài"},
                 {"effective_from": vietnam_today().isoformat(), "days": "12", "legal_basis": BASIS, "reason": "ngắn"},
                 {"effective_from": "2018-01-01", "days": "12", "legal_basis": BASIS, "reason": "Ngày hiệu lực quá cũ"},
                 {"effective_from": "hôm nay", "days": "12", "legal_basis": BASIS, "reason": "Ngày không hợp lệ"},
                 {"effective_from": vietnam_today().isoformat(), "days": "mười", "legal_basis": BASIS,
                  "reason": "Số ngày không hợp lệ"}):
        r = admin.post(f"/app/deadline-rules/{RULE}", form)
        assert r.status_code == 400 and 'id="rule-error"' in r.text, form
    after = owner_conn.execute("SELECT count(*) AS n FROM kntc.deadline_rule_version WHERE code = %s",
                               (RULE,)).fetchone()["n"]
    assert after == before


def test_the_cli_edits_as_the_administrators_own_account(server, make_account, officer, owner_conn, calendar):
    national = make_account("VN", ["sysadmin"])
    clerk = officer("X00004", ["reception"])
    today = vietnam_today()
    listed = _cli("list", "--server", server)
    assert listed.returncode == 0 and any(line.startswith(f"{RULE}\t") for line in listed.stdout.splitlines())
    common = ("--server", server, "--username", national, "--effective-from", today.isoformat())
    r = _cli("edit", RULE, *common, "--days", "11", "--legal-basis", BASIS + " (bản thử dòng lệnh)",
             "--reason", "Thử sửa thời hạn bằng dòng lệnh")
    assert r.returncode == 0, r.stderr
    try:
        assert f"{RULE}\tv" in r.stdout
        assert _accept_due(clerk) == calendar.add_working_days(today, 11).isoformat()
        edited_by = owner_conn.execute(
            "SELECT a.username FROM kntc.deadline_rule_version v JOIN kntc.account a ON a.id = v.edited_by "
            "WHERE v.code = %s ORDER BY v.version DESC LIMIT 1", (RULE,)).fetchone()["username"]
        assert edited_by == national
    finally:
        assert _cli("edit", RULE, *common, "--days", "10", "--legal-basis", BASIS,
                    "--reason", "Trả lại thời hạn như cũ").returncode == 0
    # A wrong password or a bad date: one line, no traceback.
    bad = _cli("edit", RULE, *common, "--days", "12", "--legal-basis", BASIS, "--reason", "Mật khẩu sai thử",
               password="wrong-password-123")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "login refused" in bad.stderr
    bad = _cli("edit", RULE, "--server", server, "--username", national, "--effective-from", "01/01/2027",
               "--legal-basis", BASIS, "--reason", "Ngày viết sai kiểu")
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
    assert _days(owner_conn) == 10
