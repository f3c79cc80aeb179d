"""End to end on the test cluster: a roster imported with `kntc accounts import` (timed, as
`make accounts-national` does), its officers' first logins through the API, and a load run in which
every Locust user is an officer of its own.

Needs the test cluster and the server (fixtures `pg_env`, `server`) and `kntc accounts import`.
Sizes: KNTC_ROSTER_ACCOUNTS (default 218, a province's plan) and KNTC_ROSTER_OFFICERS (default 60);
the measured run of the report is

    KNTC_ROSTER_ACCOUNTS=2000 KNTC_ROSTER_OFFICERS=500 pytest tests/load/test_roster_import.py -s
"""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from loadtests import officers
from loadtests.officers import Officer

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNTS = int(os.environ.get("KNTC_ROSTER_ACCOUNTS", "218"))
OFFICERS = int(os.environ.get("KNTC_ROSTER_OFFICERS", "60"))
BUDGETS = ("api_session", "api_address")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "python"), "-m", *args], env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module", autouse=True)
def load_budgets(pg_env: dict[str, str]) -> Iterator[None]:
    """One address logs hundreds of officers in: lift the per-address and per-session call budgets
    as the load stack does (loadtests/stack.py), and put them back afterwards."""
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as conn:
        before = conn.execute("SELECT purpose, max_hits FROM kntc.throttle_rule WHERE purpose = ANY(%s)",
                              (list(BUDGETS),)).fetchall()
        conn.execute("UPDATE kntc.throttle_rule SET max_hits = 100000000 WHERE purpose = ANY(%s)", (list(BUDGETS),))
    yield
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as conn:
        for purpose, hits in before:
            conn.execute("UPDATE kntc.throttle_rule SET max_hits = %s WHERE purpose = %s", (hits, purpose))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roster")


@pytest.fixture(scope="module")
def imported(pg_env: dict[str, str], folder: Path) -> dict[str, object]:
    """The roster, generated from the database's units and imported; the import's report."""
    started = time.monotonic()
    made = run("loadtests.roster", "--accounts", str(ACCOUNTS), "--out", str(folder / "roster.csv"),
               "--units-from-db", env=pg_env)
    assert made.returncode == 0, made.stderr
    print(f"\nroster of {ACCOUNTS} generated in {time.monotonic() - started:.1f} s")
    res = run("loadtests.accounts_import", str(folder / "roster.csv"), "--credentials", str(folder / "creds.csv"),
              "--report-dir", str(folder), env=pg_env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    print(res.stdout.strip().splitlines()[-2])
    return json.loads((folder / "accounts-import.json").read_text())


def test_the_roster_is_imported_timed_and_its_initial_passwords_kept_private(imported: dict[str, object],
                                                                            folder: Path) -> None:
    assert imported["created"] == ACCOUNTS and imported["rows"] == ACCOUNTS and imported["exit_code"] == 0
    assert imported["peak_rss_mb"] > 0 and imported["cpu_seconds"] > 0 and imported["import_seconds"] is not None
    creds = folder / "creds.csv"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    with creds.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ACCOUNTS and all(r["initial_password"] for r in rows)
    assert "accounts/s" in (folder / "accounts-import.md").read_text()


def test_importing_the_same_roster_again_creates_nothing(imported: dict[str, object], pg_env: dict[str, str],
                                                         folder: Path) -> None:
    res = run("loadtests.accounts_import", str(folder / "roster.csv"), "--credentials", str(folder / "creds.csv"),
              "--report-dir", str(folder / "again"), env=pg_env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    again = json.loads((folder / "again" / "accounts-import.json").read_text())
    assert again["created"] == 0 and again["unchanged"] == ACCOUNTS


@pytest.fixture(scope="module")
def testdata(imported: dict[str, object], server: str, folder: Path) -> Path:
    out = folder / "testdata.json"
    started = time.monotonic()
    res = run("loadtests.testdata", "--host", server, "--out", str(out), "--roster-key", str(folder / "roster.key.csv"),
              "--roster-credentials", str(folder / "creds.csv"), "--officers", str(OFFICERS), "--cases-per-unit", "3")
    assert res.returncode == 0, res.stderr[-3000:]
    print(f"\nfirst logins of {OFFICERS} officers: {time.monotonic() - started:.1f} s")
    return out


def test_each_officer_logs_in_for_the_first_time_and_sets_up_its_own_password_and_factor(testdata: Path,
                                                                                        folder: Path) -> None:
    data = json.loads(testdata.read_text())
    assert stat.S_IMODE(testdata.stat().st_mode) == 0o600
    with (folder / "roster.key.csv").open(encoding="utf-8") as f:
        simulated = sum(1 for r in csv.DictReader(f) if r["roles"] != "unit_admin")
    officers = [a for group in data["accounts"].values() for a in group]
    assert len(officers) == len({a["username"] for a in officers}) == min(OFFICERS, simulated)
    assert not data["failures"] and all(a["ready"] and a["password"] != a["initial"] for a in officers)
    heads = [a for k, group in data["accounts"].items() if k.endswith(".head") for a in group]
    assert heads and all(a.get("totp") for a in heads)  # clearance 1: a second factor
    assert not any(a.get("totp") for k, g in data["accounts"].items() if k.endswith(".reception") for a in g)
    assert {"commune.reception", "commune.head", "district.resolution"} <= set(data["accounts"])
    assert data["cases"], "teams of the roster's officers make the case files"


def test_a_second_preparation_resumes_with_the_same_officers(testdata: Path, server: str, folder: Path) -> None:
    before = json.loads(testdata.read_text())
    res = run("loadtests.testdata", "--host", server, "--out", str(testdata), "--roster-key",
              str(folder / "roster.key.csv"), "--roster-credentials", str(folder / "creds.csv"),
              "--officers", str(OFFICERS), "--cases-per-unit", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    after = json.loads(testdata.read_text())
    names = {k: sorted(a["username"] for a in g) for k, g in before["accounts"].items()}
    assert {k: sorted(a["username"] for a in g) for k, g in after["accounts"].items()} == names
    assert "set up before" in res.stderr and not after["failures"]


def test_every_locust_user_is_an_officer_of_its_own_and_hands_it_on(testdata: Path, server: str,
                                                                   tmp_path: Path) -> None:
    data = json.loads(testdata.read_text())
    pool_size = sum(len(g) for g in data["accounts"].values())
    users = max(4, min(100, pool_size // 4))
    seconds = 30 if pool_size <= 100 else 60
    limits = tmp_path / "limits.toml"
    limits.write_text('[default]\np95_ms = 600000\n["POST /api/auth/login"]\nerror_ratio = 0.0\n')
    started = time.monotonic()
    res = subprocess.run(
        [str(BIN / "locust"), "-f", str(ROOT / "loadtests" / "locustfile.py"), "--headless", "--host", server,
         "--only-summary", "--csv", str(tmp_path / "locust"), "--exit-code-on-error", "0", "--stop-timeout", "5",
         "--kntc-data", str(testdata), "--kntc-report-dir", str(tmp_path), "--kntc-thresholds", str(limits),
         "--kntc-shape", "fixed", "-u", str(users), "-r", str(max(1, users // 10)), "-t", f"{seconds}s", "--kntc-pace", "10",
         "--kntc-session-seconds", "3"],
        capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT)
    counted = json.loads((tmp_path / "officers.json").read_text())
    print(f"\nlocust: {users} users for {seconds} s ({time.monotonic() - started:.0f} s): {counted}")
    with (tmp_path / "locust_stats.csv").open() as f:
        logins = next(r for r in csv.DictReader(f) if r["Name"] == "/api/auth/login")
    assert int(logins["Failure Count"]) == 0, (tmp_path / "locust_failures.csv").read_text()
    # Handed on: twice as many officers as users logged in (three times on a quiet machine; a
    # lab build beside it slowed the logins to 43 of 45 within the run).
    assert counted["distinct_officers_logged_in"] >= min(pool_size, users * 2), counted
    assert counted["users_sharing_an_officer"] == 0
    assert res.returncode in (0, 1), res.stderr[-3000:]  # 1: other endpoints over their limits on a busy machine


def test_officers_a_smaller_run_left_out_keep_their_passwords_for_the_next(testdata: Path, server: str,
                                                                         folder: Path) -> None:
    # Their initial passwords were replaced at their first login: a run of fewer officers that forgot
    # the others left them unable to log in (401) for every later run that picked them again. Last
    # in the module: it leaves the test data with the smaller run's officers.
    res = run("loadtests.testdata", "--host", server, "--out", str(testdata), "--roster-key",
              str(folder / "roster.key.csv"), "--roster-credentials", str(folder / "creds.csv"),
              "--officers", str(max(1, OFFICERS // 3)), "--cases-per-unit", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(testdata.read_text())
    using = {a["username"] for g in data["accounts"].values() for a in g}
    kept = [Officer.from_json(a) for a in data["set_up_before"]]
    assert kept and not data["failures"] and using.isdisjoint(o.username for o in kept)
    # What was kept of them still logs them in (a fresh code where they have a factor).
    for officer in kept[:3]:
        assert officers.login(requests.Session(), server, officer)["token"]
