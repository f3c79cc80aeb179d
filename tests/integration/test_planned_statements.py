"""The statements the database plans once per server connection (core_app/repo/planned.py): installed
by `kntc migrate`, callable by the application role alone, and answering exactly what the statement
sent as text answers, to each officer under the same row-level security.

Threat rows (runbooks/security.md): T111.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from core_app.db import BEGIN_AS_ACTOR, BEGIN_WITHOUT_BUDGET
from core_app.dedup import decisions, search
from core_app.repo import cases, deadline_steps, planned
from core_app.repo.planned import Planned
from tests.conftest import Officer, clear_of_a_window_edge, petition_body

HOME = "X00004"
ELSEWHERE = "X26704"


def test_migrate_installs_each_statement_for_the_application_role_alone(owner_conn: psycopg.Connection) -> None:
    for p in planned.registry():
        row = owner_conn.execute(
            "SELECT f.prosecdef AS definer, has_function_privilege('kntc_app', f.oid, 'EXECUTE') AS app, "
            "has_function_privilege('kntc_readonly', f.oid, 'EXECUTE') AS readonly, "
            "has_function_privilege('kntc_auth', f.oid, 'EXECUTE') AS login "
            "FROM pg_proc f WHERE f.oid = %s::regprocedure", (p.signature,)).fetchone()
        # the caller's rights, so the caller's row-level security; no one else may call it
        assert row == {"definer": False, "app": True, "readonly": False, "login": False}, (p.signature, row)


@contextmanager
def _as_officer(pg_env: dict[str, str], token: str | None) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        if token:
            conn.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
        yield conn
        conn.rollback()


def test_the_case_file_planned_is_the_statement_sent_as_text_for_every_officer(
        pg_env: dict[str, str], officer: Callable[..., Officer]) -> None:
    own = officer(HOME, ["reception"])
    r = own.post("/api/cases", json=petition_body())
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    far = officer(ELSEWHERE, ["reception", "handling", "resolution"])
    seen: dict[str, list[dict[str, Any]]] = {}
    for who, token in (("own unit", own.token), ("another province", far.token), ("no session", None)):
        with _as_officer(pg_env, token) as conn:
            as_text = conn.execute(cases.CASE_FILE_JSON, (code,)).fetchall()
            as_planned = conn.execute(cases.CASE_FILE.call, (code,)).fetchall()
            # called again on the same connection, the same answer (that the plan is kept is
            # PostgreSQL's; loadtests/CAPACITY.md §12 measures it)
            again = conn.execute(cases.CASE_FILE.call, (code,)).fetchall()
            assert as_planned == as_text == again, who
            # the case row every change reads first
            row = conn.execute(cases.GET_CASE, (code,)).fetchall()
            assert conn.execute(cases.CASE_ROW.call, (code,)).fetchall() == row, who
            assert len(row) == len(as_text), who
            seen[who] = as_planned
    assert len(seen["own unit"]) == 1 and code in seen["own unit"][0]["body"]
    assert seen["another province"] == [] and seen["no session"] == []


def test_the_session_statement_planned_is_the_statement_sent_as_text(
        pg_env: dict[str, str], owner_conn: psycopg.Connection, officer: Callable[..., Officer]) -> None:
    own = officer(HOME, ["reception"])
    # the pages' statement, and the API's without a purpose (as a host of an earlier release sends it)
    for statement, more in ((BEGIN_WITHOUT_BUDGET, {}), (BEGIN_AS_ACTOR, {"purpose": None, "key": None, "more": 0})):
        for token in (own.token, "not-a-session"):
            params = {"token": token, "idle": 1800, **more}
            with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
                as_text = conn.execute(statement.sql, params).fetchall()
            with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
                as_planned = conn.execute(statement.call, params).fetchall()
                # the session it set is the transaction's: row-level security sees the officer after it
                actor = conn.execute("SELECT (kntc.actor()).account_id AS id").fetchone()
            assert as_planned == as_text, (statement.name, token)
            assert actor == {"id": as_planned[0]["account_id"]}
        assert as_text[0]["state"] == "expired"  # the made-up token, last
    # with a budget's purpose the call is judged by the shared counter plus the calls this process
    # has not added yet, and nothing is written: reading a case takes no transaction id
    key = f"planned-{own.token[:6]}"
    clear_of_a_window_edge(owner_conn, "api_session")
    owner_conn.execute("SELECT kntc.throttle_add('api_session', %s, %s)", ([key], [598]))
    for more, allowed in ((2, True), (3, False)):
        with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
            [row] = conn.execute(BEGIN_AS_ACTOR.call, {"token": own.token, "idle": 1800, "purpose": "api_session",
                                                       "key": key, "more": more}).fetchall()
            xid = conn.execute("SELECT pg_current_xact_id_if_assigned() AS xid").fetchone()
        assert row["state"] == "live" and row["allowed"] is allowed, (more, row)
        assert (row["retry_after_s"] > 0) is not allowed
        assert xid == {"xid": None}
    assert owner_conn.execute("SELECT hits FROM kntc.throttle WHERE purpose = 'api_session' AND key = %s",
                              (key,)).fetchone() == {"hits": 598}


@pytest.fixture
def probe(owner_conn: psycopg.Connection) -> Iterator[str]:
    yield "kntc.planned_test_probe(integer)"
    owner_conn.execute("DROP FUNCTION IF EXISTS kntc.planned_test_probe(integer)")


def test_a_statement_whose_columns_changed_is_installed_again(
        pg_env: dict[str, str], owner_conn: psycopg.Connection, probe: str) -> None:
    first = Planned("test_probe", params=(("n", "integer"),), returns=(("n", "integer"),), sql="SELECT %s + 1")
    assert planned.install(owner_conn, (first,)) == ["kntc.planned_test_probe"]
    # the next release returns another column: CREATE OR REPLACE alone would refuse it
    changed = Planned("test_probe", params=(("n", "integer"),), returns=(("n", "integer"), ("label", "text")),
                      sql="SELECT %s + 1, '100%%'")
    planned.install(owner_conn, (changed,))
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        assert conn.execute(changed.call, (1,)).fetchall() == [{"n": 2, "label": "100%"}]
    with psycopg.connect(pg_env["KNTC_READONLY_DATABASE_URL"]) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute(changed.call, (1,))


def test_a_statement_whose_placeholders_do_not_match_its_parameters_is_refused() -> None:
    for params in ((), (("a", "integer"), ("b", "integer"))):
        with pytest.raises(ValueError, match="placeholders"):
            Planned("x", params=params, returns=(("n", "integer"),), sql="SELECT %s").body()
    with pytest.raises(ValueError, match="names no parameter"):
        Planned("x", params=(("a", "integer"),), returns=(("n", "integer"),), sql="SELECT %(b)s").body()
    with pytest.raises(ValueError, match="fewer placeholders"):
        Planned("x", params=(("a", "integer"), ("b", "text")), returns=(("n", "integer"),),
                sql="SELECT %(a)s + %(a)s").body()


def test_named_placeholders_are_bound_by_name_and_may_repeat() -> None:
    p = Planned("x", params=(("b", "text"), ("a", "integer")), returns=(("n", "integer"),),
                sql="SELECT %(a)s + length(%(b)s) + %(a)s WHERE '%%' <> %(b)s")
    assert p.body() == "SELECT $2 + length($1) + $2 WHERE '%' <> $1"
    assert p.call == "SELECT * FROM kntc.planned_x(%(b)s::text, %(a)s::integer)"


def test_the_unit_inbox_the_overdue_page_and_search_rows_planned_are_the_statements_sent_as_text(
        pg_env: dict[str, str], owner_conn: psycopg.Connection, officer: Callable[..., Officer]) -> None:
    """Past the fifth call PL/pgSQL may keep one plan for every value: each of seven calls on one
    connection still shows each officer only what row-level security shows them as text. Search's
    rows are asked for by id, the ids of cases the officer may not read among them."""
    cleared = officer(HOME, ["reception", "handling"], clearance=1)
    codes = {}
    for level in (0, 1):
        r = cleared.post("/api/cases", json=petition_body(classification=level))
        assert r.status_code == 201, r.text
        codes[level] = r.json()["code"]
    unit_id = owner_conn.execute("SELECT id FROM kntc.unit WHERE code = %s", (HOME,)).fetchone()["id"]
    plain = officer(HOME, ["reception", "handling"])
    far = officer(ELSEWHERE, ["reception", "handling", "head"], clearance=1)
    later = date.today() + timedelta(days=400)  # every open step of the new cases is late by then
    ids = [r["id"] for r in owner_conn.execute(
        "(SELECT id FROM kntc.case_file WHERE code = ANY (%s)) UNION (SELECT id FROM kntc.case_file LIMIT 200)",
        (list(codes.values()),)).fetchall()]
    statements = ((cases.UNIT_INBOX, {"status": "received", "mine": unit_id, "limit": 500}),
                  (cases.OVERDUE, {"today": later, "unit": None, "limit": 500}),
                  (cases.OVERDUE, {"today": later, "unit": HOME, "limit": 500}),
                  (search.ROWS, {"ids": ids}))
    seen: dict[tuple[str, str], set[str]] = {}
    for who, token in (("cleared", cleared.token), ("not cleared", plain.token), ("another province", far.token),
                       ("no session", None)):
        with _as_officer(pg_env, token) as conn:
            for statement, params in statements:
                as_text = conn.execute(statement.sql, params).fetchall()
                for _ in range(7):
                    assert conn.execute(statement.call, params).fetchall() == as_text, (who, statement.name)
                seen[who, statement.name] = {r["code"] for r in as_text}
    for name in ("unit_inbox", "overdue", "search_rows"):
        assert set(codes.values()) <= seen["cleared", name]
        assert codes[0] in seen["not cleared", name] and codes[1] not in seen["not cleared", name]
        assert not seen["another province", name] & set(codes.values())
        assert seen["no session", name] == set()


def test_the_pages_case_file_is_the_planned_document_typed_as_its_parts_read_apart(
        pg_env: dict[str, str], owner_conn: psycopg.Connection, officer: Callable[..., Officer]) -> None:
    """The web pages read the case file through the API's planned document: for each officer, the
    same rows and values (dates, times, ids) as each part read apart under row-level security, a
    protected denouncer only for the officer handling the case."""
    recorder = officer(HOME, ["reception", "handling"])
    r = recorder.post("/api/cases", json=petition_body(
        kind="denunciation", denouncer_confidential=True,
        parties=[{"role": "denouncer", "full_name": "Người Tố Cáo Bí Mật", "id_number": "079190000998"}]))
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    assert recorder.post(f"/api/cases/{code}/attachments", files={
        "file": ("to-cao.pdf", b"%PDF-1.4 scan" * 50, "application/pdf")}).status_code == 201
    version = recorder.get(f"/api/cases/{code}").json()["version"]
    assert recorder.post(f"/api/cases/{code}/transitions",
                         json={"action": "submit", "version": version}).status_code == 200
    colleague = officer(HOME, ["handling"])
    far = officer(ELSEWHERE, ["head"], clearance=2)

    def apart(conn: psycopg.Connection) -> dict[str, Any] | None:
        case = conn.execute(cases.GET_CASE, (code,)).fetchone()
        if case is None:
            return None
        for name, statement in cases.CASE_PARTS.items():
            case[name] = conn.execute(statement, (case["id"],)).fetchall()
        case["hidden_parties"] = case["denouncer_confidential"] and not any(
            p["role"] == "denouncer" for p in case["parties"])
        return case

    async def planned(token: str) -> dict[str, Any] | None:
        async with await psycopg.AsyncConnection.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
            await conn.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
            try:
                return await cases.get_case(conn, code)
            except cases.NotFound:
                return None
            finally:
                await conn.rollback()

    seen = {}
    for who, token in (("recorder", recorder.token), ("colleague", colleague.token), ("another province", far.token)):
        with _as_officer(pg_env, token) as conn:
            expected = apart(conn)
        got = asyncio.run(planned(token))
        assert got == expected, who
        seen[who] = got
    recorder_case = seen["recorder"]
    assert recorder_case is not None and recorder_case["parties"][0]["id_number"] == "079190000998"
    assert recorder_case["attachments"] and recorder_case["deadlines"] and len(recorder_case["timeline"]) >= 2
    assert isinstance(recorder_case["received_on"], date) and isinstance(recorder_case["id"], UUID)
    assert seen["colleague"] is not None and seen["colleague"]["parties"] == []
    assert seen["colleague"]["hidden_parties"] is True
    assert seen["another province"] is None


def _outcome(conn: psycopg.Connection, token: str | None, statement: str, params: Any,
             case_id: UUID) -> tuple[Any, ...]:
    """What one officer's transaction sees of a statement: refused (and why), or its rows (new ids
    counted, not compared) and then the case's time limits as row-level security shows them to
    the same officer; rolled back."""
    try:
        if token:
            conn.execute("SELECT set_config('kntc.session_token', %s, true)", (token,))
        cur = conn.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
        # a write alone answers its function's one empty value, which the text does not
        rows = [r if set(r) - {"id"} else "a new row" for r in rows if not next(iter(r)).startswith("planned_")]
        steps = conn.execute("SELECT step, rule_code, starts_on, due_on, met_on, ended_by FROM kntc.case_deadline "
                             "WHERE case_id = %s ORDER BY step", (case_id,)).fetchall()
        return ("done", rows, steps)
    except psycopg.Error as exc:
        return ("refused", exc.sqlstate)
    finally:
        conn.rollback()


def test_the_intakes_writes_planned_are_the_statements_sent_as_text_for_every_officer(
        pg_env: dict[str, str], owner_conn: psycopg.Connection, officer: Callable[..., Officer]) -> None:
    """The party, the petition, the claim of the check and the time limit started and ended: each
    officer, on one server connection shared by all of them as PgBouncer shares it, past the
    fifth call, gets from the planned statement what the statement sent as text gives them."""
    own = officer(HOME, ["reception", "handling"])
    colleague = officer(HOME, ["reception"])
    far = officer(ELSEWHERE, ["reception", "handling", "head"], clearance=1)
    r = own.post("/api/cases", json=petition_body())
    assert r.status_code == 201, r.text
    case = owner_conn.execute("SELECT c.id, c.handling_unit_id AS unit, c.created_by AS account FROM kntc.case_file c "
                              "WHERE c.code = %s", (r.json()["code"],)).fetchone()
    step = owner_conn.execute("SELECT step, rule_code, rule_version FROM kntc.case_deadline WHERE case_id = %s "
                              "ORDER BY step LIMIT 1", (case["id"],)).fetchone()
    assert step is not None
    check = own.post("/api/dedup/check", json={"parties": [{"full_name": "Lê Thị Thử", "address_unit": HOME}],
                                                "subject": "Kiến nghị sửa đường"})
    assert check.status_code == 200, check.text
    today = date.today()
    statements: tuple[tuple[Planned, Any], ...] = (
        (cases.INSERT_PARTY, {"case_id": case["id"], "role": "complainant", "party_kind": "person",
                              "full_name": "Trần Thị Bình", "id_number": None, "address": "Số 2 phố Huế",
                              "address_unit_id": None, "address_unit_written_id": None, "phone": None,
                              "email": None, "identity_protected": False, "notify_channels": []}),
        (cases.INSERT_PETITION, {"case_id": case["id"], "unit_id": case["unit"], "received_on": today,
                                 "channel": "in_person", "reception_id": None, "sender_party_id": None,
                                 "content": "Đơn bổ sung.", "people_count": 1, "actor_id": case["account"],
                                 "check_id": None}),
        (decisions.CLAIM, (check.json()["check_id"],)),
        (deadline_steps.UPSERT, {"case_id": case["id"], "step": step["step"], "code": step["rule_code"],
                                 "version": step["rule_version"], "starts_on": today,
                                 "due_on": today + timedelta(days=3)}),
        (deadline_steps.END, {"case_id": case["id"], "event": "accept", "on": today}),
    )
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"], row_factory=dict_row) as conn:
        for _ in range(7):
            for who, token in (("own", own.token), ("colleague", colleague.token), ("another province", far.token),
                               ("no session", None)):
                for statement, params in statements:
                    as_text = _outcome(conn, token, statement.sql, params, case["id"])
                    as_planned = _outcome(conn, token, statement.call, params, case["id"])
                    assert as_planned == as_text, (who, statement.name)
                    seen[who, statement.name] = as_text
    # What each officer may do, so that the comparison above compares something.
    assert seen["own", "party_insert"][0] == "done" and seen["own", "party_insert"][1] == ["a new row"]
    assert seen["own", "deadline_start"][2][0]["due_on"] == today + timedelta(days=3)
    ended = [s for s in seen["own", "deadline_end"][2] if s["ended_by"] == "accept"]
    assert ended, seen["own", "deadline_end"]
    assert seen["own", "dedup_claim"][1][0]["account_id"] == owner_conn.execute(
        "SELECT account_id FROM kntc.dedup_check WHERE id = %s", (check.json()["check_id"],)).fetchone()["account_id"]
    assert seen["own", "dedup_claim"][1][0]["parties"] is not None
    # the parties typed at a check are its officer's alone
    assert all(r["parties"] is None for r in seen["colleague", "dedup_claim"][1])
    assert all(r["parties"] is None for r in seen["another province", "dedup_claim"][1])
    for name in ("party_insert", "petition_insert", "deadline_start"):
        assert seen["another province", name][0] == "refused", name
        assert seen["no session", name][0] == "refused", name
    assert seen["another province", "deadline_end"][2] == []  # sees no step of the case, ends none
