"""The national shape on a small population, end to end against the real server: every officer of an
imported roster is a user of its own at once, thinking; those that act do their first login in the
run (own password, second factor), written down for the next preparation; no request fails, no
officer is shared, and the generator's memory and CPU are in the report.

Sizes: KNTC_NATIONAL_ACCOUNTS (default 2,000 accounts, a province's roster)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNTS = int(os.environ.get("KNTC_NATIONAL_ACCOUNTS", "2000"))
BUDGETS = ("api_session", "api_address", "lookup_fail")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "python"), *args], env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module", autouse=True)
def load_budgets(pg_env: dict[str, str]) -> Iterator[None]:
    """One address logs the population in: lift the per-address and per-session budgets as the load
    stack does (loadtests/stack.py), and put them back afterwards."""
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as conn:
        before = conn.execute("SELECT purpose, max_hits, free_hits FROM kntc.throttle_rule WHERE purpose = ANY(%s)",
                              (list(BUDGETS),)).fetchall()
        conn.execute("UPDATE kntc.throttle_rule SET max_hits = 100000000, free_hits = NULL WHERE purpose = ANY(%s)",
                     (list(BUDGETS),))
    yield
    with psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], autocommit=True) as conn:
        for purpose, hits, free in before:
            conn.execute("UPDATE kntc.throttle_rule SET max_hits = %s, free_hits = %s WHERE purpose = %s",
                         (hits, free, purpose))


@pytest.fixture(scope="module")
def roster(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("national")
    # A seed of its own: another roster of this database (tests/load/test_roster_import.py) keeps its names.
    made = run("-m", "loadtests.roster", "--accounts", str(ACCOUNTS), "--seed", "16", "--out",
               str(folder / "roster.csv"), "--units-from-db", env=pg_env)
    assert made.returncode == 0, made.stderr
    res = run("-m", "loadtests.accounts_import", str(folder / "roster.csv"), "--credentials", str(folder / "creds.csv"),
              "--report-dir", str(folder), env=pg_env)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return folder


def test_every_officer_is_simulated_at_once_and_first_logins_are_kept(roster: Path, server: str) -> None:
    out = roster / "run"
    limits = roster / "limits.toml"
    # Latency is not judged on a shared test machine; correctness is: not one request may fail.
    limits.write_text("[default]\np95_ms = 600000\nerror_ratio = 0.0\n[total]\nerror_ratio = 0.0\n")
    started = time.monotonic()
    res = run("-m", "loadtests.run", "--host", server, "--national", "--roster-key", str(roster / "roster.key.csv"),
              "--roster-credentials", str(roster / "creds.csv"), "--pace", "0.02", "--step-seconds", "10",
              "--spawn-rate", "500", "--processes", "2", "--cases-per-unit", "2", "--thresholds", str(limits),
              "--out", str(out), timeout=900)
    print(f"\nnational shape on {ACCOUNTS:,} accounts in {time.monotonic() - started:.0f} s")
    print("\n".join(line for line in res.stdout.splitlines() if line.startswith(("load generator", "load:"))))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:] + (out / "locust.log").read_text()[-3000:]
    data = json.loads((roster / "testdata-roster.json").read_text())
    in_data = len({a["username"] for g in data["accounts"].values() for a in g})
    with (roster / "roster.key.csv").open(encoding="utf-8") as f:
        simulated = sum(1 for r in csv.DictReader(f) if r["roles"] != "unit_admin")
    assert in_data == simulated  # every officer of the roster, not a sample
    counted = json.loads((out / "officers.json").read_text())
    assert counted["officers_in_pool"] == simulated and counted["users_sharing_an_officer"] == 0, counted
    assert counted["officers_refused_test_data"] == 0 and counted["distinct_officers_logged_in"] > 0, counted
    gen = json.loads((out / "generator.json").read_text())
    assert gen["processes"] == 3 and gen["users"] >= simulated, gen  # the master and two workers
    assert gen["rss_mb_peak_sum"] > 0 and gen["cpu_s"] > 0
    assert "load generator:" in res.stdout and "Load generator" in (out / "summary.md").read_text()
    with (out / "locust_stats.csv").open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    assert int(rows["Aggregated"]["Failure Count"]) == 0, (out / "locust_failures.csv").read_text()
    assert "/api/auth/password [first login]" in rows  # officers set their own password as they first act

    # The next preparation finds the officers that did their first login in the run, ready.
    journal = roster / "testdata-roster.json.journal"
    assert journal.exists()
    again = run("-c", "import sys; from pathlib import Path; from loadtests import testdata; "
                f"testdata.prepare_roster({server!r}, Path({str(roster / 'testdata-roster.json')!r}), "
                f"Path({str(roster / 'roster.key.csv')!r}), [Path({str(roster / 'creds.csv')!r})], 10**7, "
                "cases_per_unit=1, lazy=True)", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((roster / "testdata-roster.json").read_text())
    ready = [a for g in after["accounts"].values() for a in g if a.get("ready")]
    assert len(ready) >= counted["distinct_officers_logged_in"], (len(ready), counted)
    assert all(a["password"] != a.get("initial") for a in ready)
    assert not journal.exists()  # folded into the test data
