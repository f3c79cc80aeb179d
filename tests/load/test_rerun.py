"""`make load` twice on the same local cluster, with fewer test accounts than users: the second run
logs the same officers in (the app is served on another port each time; the accounts stay with the
cluster), and users that share an officer share its session, so not one login is refused — not
the API's, not the pages' with their second factor."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent


PORT = os.environ["KNTC_TEST_PG_PORT"]
CLUSTER = ROOT / ".data" / f"test-{PORT}"
# The runs' folders, and so their test data (loadtests/run.py keeps it beside them), live with the
# cluster whose database holds the accounts: the test run again finds them, as `make load` does.
RUNS = CLUSTER / "load-rerun"


def load_run(out: Path, limits: Path) -> subprocess.CompletedProcess[str]:
    port = PORT
    return subprocess.run(
        [str(BIN / "python"), "-m", "loadtests.run", "--pg-root", str(CLUSTER), "--pg-port",
         port, "--shape", "fixed", "--users", "12", "--run-time", "18s", "--per-level", "1", "--cases-per-unit", "2",
         "--pace", "30", "--session-seconds", "8", "--thresholds", str(limits), "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)


def why(res: subprocess.CompletedProcess[str], folder: Path) -> str:
    log = folder / "locust.log"
    return res.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")


def logins(folder: Path) -> dict[str, tuple[int, int]]:
    with (folder / "locust_stats.csv").open() as f:
        return {f"{r['Type']} {r['Name']}": (int(r["Request Count"]), int(r["Failure Count"]))
                for r in csv.DictReader(f) if "login" in r["Name"]}


def test_a_second_run_on_the_same_cluster_logs_the_same_officers_in_without_a_refused_login(
        pg_env: dict[str, str], tmp_path: Path) -> None:
    limits = tmp_path / "limits.toml"
    # Latency is not judged on a shared test machine; correctness is: not one request may fail.
    limits.write_text("[default]\np95_ms = 600000\nerror_ratio = 0.0\n[total]\nerror_ratio = 0.0\n")
    for run in ("first", "second"):
        shutil.rmtree(RUNS / run, ignore_errors=True)
    first = load_run(RUNS / "first", limits)
    assert first.returncode == 0, why(first, RUNS / "first")
    data = json.loads((RUNS / "testdata.json").read_text())
    names = {k: sorted(a["username"] for a in g) for k, g in data["accounts"].items()}
    assert data["target"] == f"local:{CLUSTER.resolve()}:{PORT}/kntc"

    second = load_run(RUNS / "second", limits)
    assert second.returncode == 0, why(second, RUNS / "second")
    again = json.loads((RUNS / "testdata.json").read_text())
    assert {k: sorted(a["username"] for a in g) for k, g in again["accounts"].items()} == names
    for run in ("first", "second"):
        counted = json.loads((RUNS / run / "officers.json").read_text())
        # Fewer officers than users: some users play an officer another user holds (its tabs).
        assert counted["users_sharing_an_officer"] > 0 and counted["logins"] > 0, counted
        assert counted["officers_refused_test_data"] == 0, counted
        seen = logins(RUNS / run)
        assert seen.get("POST /api/auth/login", (0, 0))[0] > 0, seen
        assert all(failed == 0 for _, failed in seen.values()), (seen, (RUNS / run / "locust_failures.csv")
                                                                  .read_text())
    # Each tier's CPU in the measured stage: the app server's process tree and the cluster's.
    doc = json.loads((RUNS / "second" / "tiers.json").read_text())
    [fixed] = doc["stages"]
    used = {r["tier"]: r for r in fixed["tiers"]}
    assert used["app"]["cpu_s"] > 0 and used["PostgreSQL"]["cpu_s"] > 0, used
    assert 0 < used["app"]["ms_per_request"] < 10_000, used
    assert "## CPU theo tầng / CPU per tier" in (RUNS / "second" / "summary.md").read_text()
