"""Support's password reset, tried as support staff working from an old note (`kntc reset-password
USER --password …`) and as whoever picks up the printed password: there is one reset, support's
name for it is the same command as `kntc accounts reset-password`, and neither can leave the officer
with a password someone else chose: the one it prints opens only the setup.

Threat rows (runbooks/security.md): T51.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_PASSWORD
from tests.security.test_accounts_lifecycle import login, somewhere

BIN = Path(sys.executable).parent
REASON = "Trưởng đơn vị đề nghị bằng văn bản số 7/TCD"
PRINTED = "initial password (one login, then it must be changed): "


def kntc(pg_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kntc"), *args], env={**os.environ, **pg_env, "SUDO_USER": "hotro.lan"},
                          capture_output=True, text=True, timeout=60)


def test_support_cannot_set_a_password_the_officer_keeps(server, make_account, owner_conn, pg_env):
    name = make_account("X00004", ["reception"])
    chosen = "Mat-khau-ho-tro-chon-2026"
    res = kntc(pg_env, "reset-password", name, "--password", chosen, "-r", REASON)
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "kntc accounts reset-password" in res.stderr and res.stdout == ""
    assert login(server, name, chosen).status_code == 401
    assert login(server, name, TEST_PASSWORD).status_code == 200  # nothing was changed


@pytest.mark.parametrize("command", [["reset-password"], ["accounts", "reset-password"]])
def test_both_names_issue_a_one_time_password_that_opens_only_the_setup(server, make_account, owner_conn, pg_env,
                                                                          command):
    name = make_account("X00004", ["reception"])
    held = login(server, name, TEST_PASSWORD).json()["token"]
    res = kntc(pg_env, *command, name, "-r", REASON)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"reset_password {name}: no field; 1 session(s) ended" and lines[1].startswith(PRINTED)
    one_time = lines[1].removeprefix(PRINTED)
    # The session held before the reset is over; the old password no longer opens the account.
    assert httpx.get(server + "/api/auth/me", headers={"Authorization": f"Bearer {held}"}).status_code == 401
    assert login(server, name, TEST_PASSWORD).status_code == 401
    r = login(server, name, one_time)
    assert r.status_code == 200 and r.json()["setup"]["password_change"] is True and r.json()["account"] is None
    token = {"Authorization": f"Bearer {r.json()['token']}", **somewhere()}
    resp = httpx.get(server + "/api/cases", headers=token)
    assert resp.status_code == 403 and resp.json()["error"] == "setup_required"
    row = owner_conn.execute(
        "SELECT a.must_change_password, l.detail FROM kntc.account a JOIN kntc.access_log l ON l.detail->>'target' = "
        "a.username AND l.detail->>'action' = 'reset_password' WHERE a.username = %s", (name,)).fetchone()
    assert row["must_change_password"] and row["detail"]["reason"] == REASON
    assert "hotro.lan" in str(row["detail"])  # the operator who ran it


def test_without_a_reason_nothing_is_reset(server, make_account, pg_env):
    name = make_account("X00004", ["reception"])
    assert kntc(pg_env, "reset-password", name).returncode != 0
    assert login(server, name, TEST_PASSWORD).status_code == 200
