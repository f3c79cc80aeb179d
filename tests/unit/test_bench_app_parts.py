"""`bench_app` splits the case file's SQL into the session statement every request pays and the
rest: the session-only script is each read's own opening, both made from the app's statements, so
they cannot drift apart, and the summary prints each part against pgbench -S. That the scripts run
and read the officer's case: tests/integration/test_bench_scripts.py."""

from __future__ import annotations

import pytest

from core_app.db import BEGIN_AS_ACTOR
from core_app.dedup import search
from core_app.repo import cases
from loadtests import bench_app, bench_scripts


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("name", sorted(bench_scripts.READS))
def test_the_session_script_is_each_reads_opening_then_commit(name: str, pipelined: bool) -> None:
    whole = bench_scripts.script(name, pipelined)
    opening = bench_scripts.session_only(pipelined).split("\n", 1)[1].removesuffix("COMMIT;\n")
    assert opening in whole
    assert whole.endswith("COMMIT;\n")
    assert BEGIN_AS_ACTOR.function in opening
    assert "kntc.case_file" not in opening  # none of the endpoint's own SQL


def test_each_read_sends_the_apps_own_statements() -> None:
    assert cases.CASE_FILE.function in bench_scripts.script("case_file.sql", False)
    assert cases.UNIT_INBOX.function in bench_scripts.script("inbox.sql", False)
    found = bench_scripts.script("search.sql", False)
    assert "kntc.search_ids(" in found and search.ROWS.function in found


def test_the_summary_prints_each_part_as_a_share_of_select_only(capsys: pytest.CaptureFixture[str]) -> None:
    case = bench_app.Result("case file   GET /api/cases/{code}", 500.0, 20.0, 60.0, 90.0, 0, db_tps=1000.0,
                            parts={"session statement alone": 12000.0, "without row-level security": 2000.0})
    text = bench_app.print_summary([case], 80000.0, "abc1234")
    lines = text.splitlines()
    session = next(line for line in lines if "session statement alone" in line)
    assert session.split()[-2:] == ["12000.0", "15.0%"]
    unpoliced = next(line for line in lines if "without row-level security" in line)
    assert unpoliced.split()[-2:] == ["2000.0", "2.5%"]


def test_the_summary_prints_the_statements_time_and_planning_of_each_request_beside_its_database_cpu() -> None:
    # 210 ms in statements for 9.5 ms of CPU: the request mostly waited, which CPU alone does not say
    intake = bench_app.Result("intake      POST /api/dedup/check + POST /api/cases", 60.0, 50.0, 90.0, 120.0, 0,
                              db_tps=100.0, db_cpu_ms_http=9.5, db_statements_ms=210.0, db_planning_ms=0.25)
    header, line = bench_app.print_summary([intake], 80000.0, "abc1234").splitlines()[1:3]
    assert "app ms DB ms stmt ms plan ms SQL tps" in " ".join(header.split())
    assert line.split()[-5:] == ["9.50", "210.00", "0.25", "100.0", "0.1%"]
    # the lines below it keep their columns
    case = bench_app.Result("case file   GET /api/cases/{code}", 500.0, 20.0, 60.0, 90.0, 0, db_tps=1000.0,
                            parts={"session statement alone": 12000.0})
    lines = bench_app.print_summary([case], 80000.0, "abc1234").splitlines()
    assert len({len(line) for line in lines[1:]}) == 1, lines


def test_planning_is_counted_at_every_level_from_the_benchs_own_cluster() -> None:
    from loadtests import statements

    sent: list[str] = []
    statements.reset(lambda sql: sent.append(sql) or "", every_level=True)
    # the statements inside functions and triggers too: their planning runs inside the request's
    assert sent[0] == "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
    assert sent[1] == "ALTER SYSTEM SET pg_stat_statements.track_planning = on"
    got = statements.spent(lambda sql: sent.append(sql) or '{"statements_ms": 120.5, "planning_ms": 30.25}')
    assert got == {"statements_ms": 120.5, "planning_ms": 30.25}
    # the time of the statements sent, once (what ran inside them is part of it); planning at every level
    assert "FILTER (WHERE s.toplevel)" in sent[-1] and "sum(s.total_plan_time)" in sent[-1]
