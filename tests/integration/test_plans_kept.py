"""Functions that every officer request or duplicate check runs keep their plans on a server
connection: PostgreSQL plans each of their statements once, not at every call.

Through PgBouncer each statement the case service sends is planned at every call; what runs inside a
PL/pgSQL function is planned once per server connection, if the function lets PL/pgSQL keep its plan.
A SQL function with settings of its own (SECURITY DEFINER, search_path) is planned at every call, and
a PL/pgSQL statement may be planned again at every call when its estimates vary with the values.

Counted with `pg_stat_statements` (planning tracked, statements inside functions too), which the
embedded cluster loads as the lab's servers do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from core_app.db import session_statement
from core_app.localdb import LocalCluster
from core_app.throttle import Budget
from tests.conftest import Officer

CALLS = 12
# PL/pgSQL plans a statement for its values at its first five calls on a connection, then keeps one
# plan for all values if that costs no more: at most six plans however many calls follow.
KEPT = 6
# The statements inside the functions, as pg_stat_statements shows them (constants as $n).
MATCH = "WITH qp AS MATERIALIZED"
SEAL = "kntc.actor_seal(p_token, p_actor::text"
TOKEN = "FROM kntc.exchange_token t"
CASE_CODE = "INSERT INTO kntc.case_code_counter"
CHECK_PARTIES = "FROM kntc.dedup_check c"
SEARCH_ROWS = "JOIN kntc.unit hu ON hu.id = c.handling_unit_id WHERE c.id = ANY"
SESSION = "FROM (SELECT r.state, r.who FROM kntc.session_resume("
HOME = "X00004"


def _plans(cluster: LocalCluster, calls: str) -> dict[str, tuple[int, int]]:
    """(calls, plans) of each counted statement after running `calls` on one connection."""
    cluster.superuser_psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public")
    out = cluster.superuser_psql(
        "SET pg_stat_statements.track = 'all'; SET pg_stat_statements.track_planning = on; "
        "SELECT pg_stat_statements_reset(); "
        f"{calls} "
        "SELECT 'stmt|' || calls || '|' || plans || '|' || regexp_replace(query, '\\s+', ' ', 'g') "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    counted: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        if m := re.match(r"\s*stmt\|(\d+)\|(\d+)\|(.*)", line):
            for name, marker in (("match", MATCH), ("seal", SEAL), ("token", TOKEN), ("case code", CASE_CODE),
                                 ("check's parties", CHECK_PARTIES), ("search rows", SEARCH_ROWS),
                                 ("session", SESSION)):
                if marker in m.group(3):
                    calls_, plans = counted.get(name, (0, 0))
                    counted[name] = (calls_ + int(m.group(1)), plans + int(m.group(2)))
    return counted


def test_the_duplicate_checks_match_is_planned_once_for_every_ward_and_subject(
        cluster: LocalCluster, owner_conn: psycopg.Connection) -> None:
    # Wards and subjects differ at each call, as the checks of a day's intakes do.
    wards = [r["code"] for r in owner_conn.execute(
        "SELECT code FROM kntc.unit WHERE code ~ '^X[0-9]+$' AND valid_to IS NULL ORDER BY md5(code) LIMIT %s",
        (CALLS,))]
    calls = " ".join(
        f"SELECT count(*) FROM kntc.dedup_match(ARRAY['0790{i:08d}'], ARRAY['Nguyễn Văn Thử {i}'], "
        f"ARRAY[(SELECT id FROM kntc.unit WHERE code = '{w}')], 'Kiến nghị số {i} về việc sửa đường', NULL);"
        for i, w in enumerate(wards))
    calls_, plans = _plans(cluster, calls)["match"]
    assert calls_ == CALLS
    assert plans <= 1, f"the match was planned {plans} times in {CALLS} calls"


def test_the_officers_seal_keeps_its_plan_on_a_connection(cluster: LocalCluster,
                                                         officer: Callable[..., Officer]) -> None:
    clerk = officer(HOME, ["reception"])
    calls = " ".join(f"SELECT state FROM kntc.session_resume('{clerk.token}', 900);" for _ in range(CALLS))
    counted = _plans(cluster, calls)
    assert counted["seal"][0] == CALLS, counted
    assert counted["seal"][1] <= KEPT, f"the seal was planned {counted['seal'][1]} times in {CALLS} calls"


def test_a_request_without_a_systems_token_does_not_look_for_one(cluster: LocalCluster) -> None:
    """The duplicate check asks whether a connected system is calling (to choose its budget): an
    officer's request has no such token, and the lookup of one is neither planned nor run."""
    none = " ".join("SELECT kntc.exchange_client_id();" for _ in range(CALLS))
    assert "token" not in _plans(cluster, none)
    # With a token (here unknown), the lookup runs at each call and keeps its plan.
    some = ("SELECT set_config('kntc.exchange_token', 'no-such-token', false); "
            "SELECT set_config('kntc.exchange_cert', repeat('ab', 32), false); " + none)
    calls_, plans = _plans(cluster, some)["token"]
    assert calls_ == CALLS
    assert plans <= KEPT, f"the token's lookup was planned {plans} times in {CALLS} calls"


def test_the_benchmark_counts_planning_on_a_cluster_named_by_a_relative_folder(cluster: LocalCluster) -> None:
    """`make bench-app` reads pg_stat_statements of the cluster and database it was given, the
    cluster as `--pg-root .data/…` is usually written: relative to the checkout."""
    from loadtests import bench_app, statements

    query = bench_app.statements_query(Path(os.path.relpath(cluster.root)), cluster.port, cluster.database)
    assert query is not None
    query("SELECT count(*) FROM kntc.unit")
    assert statements.spent(query)["statements_ms"] > 0


def test_the_intakes_small_functions_keep_their_plans(cluster: LocalCluster) -> None:
    """The case's code and the parties typed at the check: each runs its statement at every call and
    plans it at most for the first calls."""
    calls = " ".join(
        f"SELECT kntc.next_case_code((SELECT id FROM kntc.unit WHERE code = '{HOME}'), 2099); "
        "SELECT kntc.dedup_check_parties(gen_random_uuid());"
        for _ in range(CALLS))
    counted = _plans(cluster, calls)
    for name in ("case code", "check's parties"):
        calls_, plans = counted[name]
        assert calls_ == CALLS, (name, counted)
        assert plans <= KEPT, f"{name}: planned {plans} times in {CALLS} calls"


def test_searchs_page_of_rows_keeps_its_plan_whatever_the_ids(cluster: LocalCluster,
                                                              owner_conn: psycopg.Connection) -> None:
    """Each search asks for other ids; sent as text the rows were planned at every search, each
    row-level-security check with them."""
    ids = [str(r["id"]) for r in owner_conn.execute("SELECT id FROM kntc.case_file LIMIT %s", (CALLS * 3,))]
    calls = " ".join(f"SELECT count(*) FROM kntc.planned_search_rows(ARRAY{ids[i:i + 3] or ['00000000-0000-0000-0000-000000000000']}::uuid[]);"
                     for i in range(0, CALLS * 3, 3))
    counted = _plans(cluster, calls)
    assert counted["search rows"][0] == CALLS, counted
    assert counted["search rows"][1] <= KEPT, f"search's rows were planned {counted['search rows'][1]} times"


@pytest.mark.parametrize("budget", [Budget("api_session", "plans-kept"), None], ids=["an API call", "a page"])
def test_the_session_statement_keeps_its_plan_with_a_budget_and_without(
        budget: Budget | None, cluster: LocalCluster, officer: Callable[..., Officer]) -> None:
    """Every request's first statement, as the app sends it for an API call (judged against its
    budget) and for a page (no budget): a page's was planned at every call, 80 µs each."""
    clerk = officer(HOME, ["reception"])
    statement, params = session_statement(clerk.token, 900, budget, 1)
    literals = {k: sql.Literal(v).as_string(None) for k, v in params.items()}
    calls = " ".join(f"{statement % literals};" for _ in range(CALLS))
    calls_, plans = _plans(cluster, calls)["session"]
    assert calls_ == CALLS
    assert plans <= KEPT, f"the session statement was planned {plans} times in {CALLS} calls"
