"""bench-app's pgbench scripts send what the case service sends and read what the officer reads.

The reads' scripts are made from the app's own statements (loadtests/bench_scripts.py). Each runs here
through pgbench as the application role, in both of the app's connection modes, on a live officer
session, and must read the one case of the officer's ward that the API shows: a script whose session
were not live, or whose statement no longer took its variables, would have the bench time SQL that
finds nothing or fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from loadtests import bench_app, bench_scripts
from tests.conftest import Officer, act, petition_body

# The column of each read's last statement that holds the case's code (the case file: inside its JSON).
READ_COLUMN = {"case_file.sql": "body", "inbox.sql": "code", "search.sql": "code"}


def _ward_without_cases(owner_conn: psycopg.Connection) -> dict:
    """A current ward that holds and received no case (each call: another, once it has one)."""
    ward = owner_conn.execute(
        "SELECT u.code, u.id FROM kntc.unit u WHERE u.code ~ '^X[0-9]+$' AND u.valid_to IS NULL AND NOT EXISTS ("
        " SELECT 1 FROM kntc.case_file c WHERE c.handling_unit_id = u.id OR c.receiving_unit_id = u.id)"
        " ORDER BY md5(u.code) LIMIT 1").fetchone()
    assert ward
    return ward


@pytest.fixture(scope="module")
def one_case_ward(owner_conn: psycopg.Connection, officer: Callable[..., Officer]) -> tuple[Officer, str, int]:
    """An officer of a ward with no other case, and its one case, in handling, about compensation."""
    ward = _ward_without_cases(owner_conn)
    clerk = officer(ward["code"], ["reception", "handling"])
    r = clerk.post("/api/cases", json=petition_body(subject="Khiếu nại về mức bồi thường đất ở"))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    act(clerk, code, "submit")
    assert [c["code"] for c in clerk.get("/api/cases?scope=unit&status=in_handling").json()["data"]] == [code]
    assert [c["code"] for c in clerk.get(bench_app.SEARCH_PATH).json()["data"]] == [code]
    return clerk, code, ward["id"]


def _reading_the_case(script: str, column: str) -> str:
    """The script with its read's row kept (`\\gset`) and checked before COMMIT: a division by zero,
    so a failed transaction, unless the column holds the case's code."""
    body, _ = script.rsplit("COMMIT;\n", 1)
    rest, read = body.rstrip(";\n").rsplit("\n", 1)
    return (f"{rest}\n{read} \\gset r_\n"
            f"SELECT 1 / (strpos((:r_{column})::text, (:want)::text) > 0)::int;\nCOMMIT;\n")


@pytest.mark.parametrize("pipelined", [False, True], ids=["through PgBouncer", "pipelined"])
@pytest.mark.parametrize("name", sorted(bench_scripts.READS))
def test_each_reads_script_reads_the_officers_case_through_pgbench(
        name: str, pipelined: bool, one_case_ward: tuple[Officer, str, int], pg_env: dict[str, str],
        tmp_path: Path) -> None:
    clerk, code, unit_id = one_case_ward
    script = tmp_path / name
    script.write_text(_reading_the_case(bench_scripts.script(name, pipelined), READ_COLUMN[name]))
    prefix, n = code.rsplit("-", 1)
    variables = {**bench_scripts.variables(clerk.token, unit_id), "prefix": prefix + "-", "lo": n, "hi": n,
                 "want": code}
    cmd = [str(bench_app.PGBENCH), "-n", "-M", "prepared", "-c", "1", "-t", "2", "-f", str(script)]
    for k, v in variables.items():
        cmd += ["-D", f"{k}={v}"]
    res = subprocess.run([*cmd, pg_env["KNTC_DATABASE_URL"]], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-800:]
    assert "number of transactions actually processed: 2/2" in res.stdout, res.stdout


def test_a_session_that_is_not_live_reads_nothing(one_case_ward: tuple[Officer, str, int],
                                                  pg_env: dict[str, str], tmp_path: Path) -> None:
    """The check above would pass a script that read as someone else; here the same script with
    another token finds no case, so it is the session that lets the script read."""
    _, code, unit_id = one_case_ward
    script = tmp_path / "case_file.sql"
    script.write_text(_reading_the_case(bench_scripts.script("case_file.sql", False), "body"))
    prefix, n = code.rsplit("-", 1)
    cmd = [str(bench_app.PGBENCH), "-n", "-M", "prepared", "-c", "1", "-t", "1", "-f", str(script)]
    for k, v in {**bench_scripts.variables("not-a-session", unit_id), "prefix": prefix + "-", "lo": n, "hi": n,
                 "want": code}.items():
        cmd += ["-D", f"{k}={v}"]
    res = subprocess.run([*cmd, pg_env["KNTC_DATABASE_URL"]], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "expected one row, got 0" in res.stderr, res.stderr[-800:]


def test_the_intakes_script_records_petitions_as_the_officer(owner_conn: psycopg.Connection,
                                                            officer: Callable[..., Officer],
                                                            pg_env: dict[str, str], tmp_path: Path) -> None:
    """The intake's statements are written by hand after an opening made from the app's: the case files
    pgbench records are the officer's, in the officer's ward, each under a duplicate check."""
    ward = _ward_without_cases(owner_conn)
    clerk = officer(ward["code"], ["reception"])
    script = bench_scripts.write(tmp_path, "record_petition.sql", False)
    cmd = [str(bench_app.PGBENCH), "-n", "-M", "prepared", "-c", "1", "-t", "2", "-f", str(script),
           "-D", f"token={clerk.token}", "-D", f"key={bench_scripts.budget_key(clerk.token)}"]
    res = subprocess.run([*cmd, pg_env["KNTC_DATABASE_URL"]], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-800:]
    made = owner_conn.execute(
        "SELECT a.username, count(DISTINCT d.check_id) AS checks FROM kntc.case_file c"
        " JOIN kntc.unit u ON u.id = c.handling_unit_id JOIN kntc.account a ON a.id = c.created_by"
        " JOIN kntc.dedup_decision d ON d.case_id = c.id WHERE u.code = %s GROUP BY a.username",
        (ward["code"],)).fetchall()
    assert [(r["username"], r["checks"]) for r in made] == [(clerk.username, 2)]
