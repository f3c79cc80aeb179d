"""Session timeout, lockout and throttling, and the support commands of runbooks/officer-support.md."""

from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import BIN, TEST_PASSWORD


def test_idle_session_is_ended_and_logging_in_again_is_needed(web_officer, owner_conn):
    user = web_officer("X00004", ["reception"])
    token = user.client.cookies["kntc_session"]
    # The last activity is kept in the database (every worker and host sees it): 31 minutes ago.
    owner_conn.execute("UPDATE kntc.session SET last_seen_at = now() - interval '31 minutes' "
                       "WHERE token_hash = sha256(convert_to(%s, 'UTF8'))", (token,))
    r = user.get("/app")
    assert r.status_code == 303 and "reason=idle" in r.headers["location"]
    # The session was closed in the database too: the old cookie does not come back to life.
    user.client.cookies.set("kntc_session", token)
    r = user.get("/app")
    assert r.status_code == 303 and "reason=expired" in r.headers["location"]


def test_failed_logins_slow_that_address_not_the_account_and_support_clears_them(web, make_account, pg_env):
    name = make_account("X00004", ["reception"])
    user = web()
    user.get("/login")
    headers = {"X-Real-IP": "198.51.100.23"}  # its own address, so other tests' throttling is untouched
    for _ in range(5):
        user.post("/login", {"username": name, "password": "wrong-password-9"}, headers=headers)
    r = user.post("/login", {"username": name, "password": TEST_PASSWORD}, headers=headers)
    assert r.status_code == 429 and "Đăng nhập sai nhiều lần" in r.text
    # The officer's own machine is not locked out by failures from another address.
    r = user.post("/login", {"username": name, "password": TEST_PASSWORD, "next": "/app"},
                  headers={"X-Real-IP": "198.51.100.24"})
    assert r.status_code == 303
    res = subprocess.run([str(BIN / "kntc"), "unlock", name], env={**os.environ, **pg_env}, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0 and "unlocked" in res.stdout, res.stderr
    user = web()
    user.get("/login")
    r = user.post("/login", {"username": name, "password": TEST_PASSWORD, "next": "/app"}, headers=headers)
    assert r.status_code == 303


def test_failed_lookups_from_one_address_are_slowed_down(web):
    citizen = web()
    citizen.get("/lookup")
    headers = {"X-Real-IP": "203.0.113.77"}
    took = []
    for i in range(10):
        t0 = time.monotonic()
        r = citizen.post("/lookup", {"code": f"X00004-2026-99{i:04d}", "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"},
                         headers=headers)
        took.append(time.monotonic() - t0)
        assert r.status_code == 404
    # Three failures go through at once, then each waits 1 s, 2 s, 4 s ... (counted in the database).
    assert sum(took[6:]) >= 1.0, took
    # Another address is not slowed down by it.
    t0 = time.monotonic()
    citizen.post("/lookup", {"code": "X00004-2026-990000", "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"},
                 headers={"X-Real-IP": "203.0.113.78"})
    assert time.monotonic() - t0 < 0.5


def test_support_resets_a_password_and_explains_access(web, make_account, pg_env):
    env = {**os.environ, **pg_env}
    name = make_account("X00004", ["reception"])

    def kntc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "kntc"), *args], env=env, capture_output=True, text=True, timeout=60)

    # Support issues a one-time password with a reason; the officer must replace it before working.
    assert kntc("reset-password", name).returncode != 0  # no reason: refused
    res = kntc("reset-password", name, "--reason", "Trưởng đơn vị đề nghị bằng văn bản")
    assert res.returncode == 0, res.stderr
    one_time = res.stdout.split("initial password (one login, then it must be changed):")[1].strip()
    first = web()
    assert first.login(name, one_time).status_code == 303
    assert first.get("/app/inbox").headers["location"] == "/app/account/setup"
    temp = "Lụa-Tơ-Tằm-Vạn-Phúc-2026"
    r = first.post("/app/account/password", {"current_password": one_time, "new_password": temp,
                                              "confirm_password": temp})
    assert r.status_code == 303 and r.headers["location"] == "/app", r.text[-400:]
    missing = kntc("reset-password", "no.such.officer", "-r", "Trưởng đơn vị đề nghị")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
    assert "--password" in kntc("reset-password", name, "--password", "Abc-12345678", "-r", "xin cấp lại").stderr

    # Record a case in X00004 as this officer, then ask about an officer of X00008.
    user = web()
    user.login(name, temp)
    user.get("/app/cases/new")
    r = user.record({"party_role": "petitioner", "party_full_name": "Lý Văn Giang",
                                     "kind": "recommendation", "channel": "letter", "subject": "Kiến nghị chiếu sáng",
                                     "content": "Đề nghị lắp đèn ngõ 7.", "complaint_round": "1",
                                     "classification": "0", "people_count": "1"})
    code = r.headers["location"].rsplit("/", 1)[1]
    other = make_account("X00008", ["head"], 2)
    res = kntc("explain-access", other, code)
    assert res.returncode == 2 and "CANNOT SEE" in res.stdout and "X00008" in res.stdout
    res = kntc("explain-access", name, code)
    assert res.returncode == 0 and "CAN SEE" in res.stdout and "may act" in res.stdout
