"""The load report's costliest statements (loadtests/statements.py): what it reads from the leader
and how the summary shows it. The reading itself, on the lab's leader after officers worked, is
tests/infra/test_pgbouncer.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadtests import statements


def test_the_statements_are_read_costliest_first_and_shown_per_request(tmp_path: Path) -> None:
    sent: list[str] = []
    rows = [{"role": "kntc_app", "calls": 300, "total_ms": 900.0, "ms_per_call": 3.0, "plan_ms_per_call": 1.25, "rows": 300, "blocks": 10,
             "blocks_read": 0, "query": "SELECT kntc.search_ids($1, $2) | x"},
            {"role": "kntc_app", "calls": 300, "total_ms": 100.0, "ms_per_call": 0.333, "plan_ms_per_call": 0.05, "rows": 300, "blocks": 5,
             "blocks_read": 0, "query": "SELECT s.state FROM kntc.session_begin($1, $2)"}]

    def leader(sql: str) -> str:
        sent.append(sql)
        return json.dumps(rows)

    top = statements.top(leader, 2)
    assert "LIMIT 2" in sent[0] and "'kntc_app', 'kntc_login'" in sent[0]
    assert [r["share_of_listed"] for r in top] == [0.9, 0.1]
    doc = statements.write(tmp_path, top, "test")
    assert json.loads((tmp_path / "statements.json").read_text())["statements"][0]["calls"] == 300
    text = "\n".join(statements.markdown(doc, requests=600))
    # 900 ms over the run's 600 requests: 1.5 ms of each request went to search
    # 1.25 ms of each call planned again: no statement is prepared through PgBouncer 1.18
    assert "| kntc_app | 300 | 3.000 | 1.250 | 0.9 | 1.500 | `SELECT kntc.search_ids($1, $2) \\| x` |" in text


def test_the_summary_says_how_much_of_each_request_every_statement_took(tmp_path: Path) -> None:
    sent: list[str] = []

    def leader(sql: str) -> str:
        sent.append(sql)
        return json.dumps({"case_service_ms": 1200.0, "case_service_calls": 4800, "case_service_plan_ms": 300.0,
                           "every_role_ms": 1500.0})

    total = statements.totals(leader)
    # the case service's share is the statements of its roles; the other roles' count only in the whole
    assert "FILTER (WHERE r.rolname IN ('kntc_app', 'kntc_login'))" in sent[0]
    doc = statements.write(tmp_path, [], "test", total)
    assert json.loads((tmp_path / "statements.json").read_text())["totals"]["every_role_ms"] == 1500.0
    text = "\n".join(statements.markdown(doc, requests=600))
    assert ("Every statement of the case service: 2.000 ms per request, of which planning 0.500 ms "
            "(8.0 statements per request)") in text
    assert "included: 2.500 ms per request" in text


def test_the_command_without_a_lab_says_so_in_one_line(tmp_path: Path) -> None:
    for action in ("reset", "top"):
        res = subprocess.run([sys.executable, "-m", "loadtests.statements", action, "--inventory", str(tmp_path / "none.yml")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("statements: no leader of site dc"), lines


def test_a_limit_that_is_no_count_of_statements_is_refused_in_one_line() -> None:
    for bad in ("0", "-3", "ten"):
        res = subprocess.run([sys.executable, "-m", "loadtests.statements", "top", "--limit", bad],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert "expected a whole number of statements, at least 1" in res.stderr.strip().splitlines()[-1]


def test_the_reset_turns_planning_time_on_before_it_empties_the_statements() -> None:
    sent: list[str] = []
    statements.reset(lambda sql: sent.append(sql) or "")
    # ALTER SYSTEM alone (it refuses a transaction block), then the reload, then the reset
    assert sent[0] == "ALTER SYSTEM SET pg_stat_statements.track_planning = on"
    assert sent[1] == "SELECT pg_reload_conf()" and "pg_stat_statements_reset()" in sent[2]
