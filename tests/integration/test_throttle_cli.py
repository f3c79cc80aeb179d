"""`kntc throttle`, as a capacity test's window runs it: the budget changed on every host at once (the
next request counts against it), the old figure printed so it can be put back, a typo refused."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg

from tests.conftest import clear_of_a_window_edge

BIN = Path(sys.executable).parent


def kntc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kntc"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_budget_is_changed_for_every_host_and_put_back(pg_env: dict[str, str], owner_conn: psycopg.Connection,
                                                          server: str):
    listed = kntc(pg_env, "throttle", "list")
    assert listed.returncode == 0 and "api_address" in listed.stdout and "login_pair" in listed.stdout
    before = owner_conn.execute("SELECT max_hits FROM kntc.throttle_rule WHERE purpose = 'api_address'"
                                ).fetchone()["max_hits"]
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    try:
        res = kntc(pg_env, "throttle", "set", "api_address", "3")
        assert res.returncode == 0 and res.stdout.strip() == f"api_address: {before} -> 3"
        # Calls without a session from one address: the fourth in the window is refused. The budget
        # slides (the window before counts in proportion to what is left of it, rounded down), so
        # four calls across the window's end may all pass: they start with ten seconds of it left.
        clear_of_a_window_edge(owner_conn, "api_address")
        codes = [httpx.get(f"{server}/api/units", params={"q": "Ba Đình"},
                           headers={"X-Real-IP": address}, timeout=10).status_code for _ in range(4)]
        assert 429 not in codes[:3] and codes[3] == 429, codes
    finally:
        res = kntc(pg_env, "throttle", "set", "api_address", str(before))
        assert res.returncode == 0 and res.stdout.strip() == f"api_address: 3 -> {before}"
    for bad, says in ((("set", "api_adress", "5"), "no budget named 'api_adress'"),
                      (("set", "api_address", "0"), "")):
        res = kntc(pg_env, "throttle", *bad)
        assert res.returncode != 0 and says in res.stderr and "Traceback" not in res.stderr
    assert owner_conn.execute("SELECT max_hits FROM kntc.throttle_rule WHERE purpose = 'api_address'"
                              ).fetchone()["max_hits"] == before
