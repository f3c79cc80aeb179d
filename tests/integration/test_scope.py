"""Scope and clearance are enforced by PostgreSQL itself: an officer sees their unit's cases and
those of the units below, classified cases only with enough clearance, and a confidential
denouncer's identity only when handling the case. Checked through the API and directly in SQL
as the application's database role, for officers drawn at random (hypothesis); the overdue list too.

Threat rows (runbooks/security.md): T112.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Officer, petition_body

# (unit of the officer who records it, classification)
CASE_UNITS = ["X00004", "X00008", "X25747"]
OFFICER_UNITS = ["X00004", "X00008", "X25747", "T01", "T79", "VN", "T01-TAND", "X00004-MTTQ"]


@pytest.fixture(scope="module")
def world(officer, owner_conn):
    """Nine cases: three communes (two in Hà Nội, one in Hồ Chí Minh City) x three classifications."""
    cases = []
    for unit in CASE_UNITS:
        recorder = officer(unit, ["reception", "handling"], 2)
        for classification in (0, 1, 2):
            r = recorder.post("/api/cases", json=petition_body(classification=classification))
            assert r.status_code == 201, r.text
            cases.append({"code": r.json()["code"], "unit": unit, "classification": classification})
    paths = {r["code"]: str(r["path"]) for r in owner_conn.execute(
        "SELECT code, path FROM kntc.unit WHERE code = ANY(%s)", (CASE_UNITS + OFFICER_UNITS,))}
    return {"cases": cases, "paths": paths}


def expected_visible(world, officer_unit: str, clearance: int) -> set[str]:
    paths = world["paths"]
    # A specialised body (court, Front...) reads the area of its administrative unit.
    scope_unit = {"T01-TAND": "T01", "X00004-MTTQ": "X00004"}.get(officer_unit, officer_unit)
    scope = paths[scope_unit]
    return {c["code"] for c in world["cases"]
            if c["classification"] <= clearance
            and (paths[c["unit"]] == scope or paths[c["unit"]].startswith(scope + "."))}


def sql_visible(pg_env, token: str, codes: list[str]) -> set[str]:
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (token,))
        rows = conn.execute("SELECT code FROM kntc.case_file WHERE code = ANY(%s)", (codes,)).fetchall()
    return {r[0] for r in rows}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=st.sampled_from(OFFICER_UNITS), clearance=st.integers(0, 2))
def test_no_officer_reads_outside_scope_or_clearance(world, server, make_account, pg_env, unit, clearance):
    roles = ["external_reader"] if unit in ("T01-TAND", "X00004-MTTQ") else ["handling"]
    off = Officer(server, make_account(unit, roles, clearance))
    codes = [c["code"] for c in world["cases"]]
    expected = expected_visible(world, unit, clearance)

    seen_api = {code for code in codes if off.get(f"/api/cases/{code}").status_code == 200}
    assert seen_api == expected
    for code in set(codes) - expected:
        r = off.get(f"/api/cases/{code}")
        assert r.status_code == 404 and "subject" not in r.text

    listed = {c["code"] for c in off.get("/api/cases", params={"per_page": 200}).json()["data"]}
    assert listed & set(codes) <= expected

    assert sql_visible(pg_env, off.token, codes) == expected


def test_application_role_without_a_session_sees_nothing(world, pg_env):
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM kntc.case_file").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM kntc.party").fetchone()[0] == 0
        conn.execute("SELECT set_config('kntc.session_token', 'forged-token', false)")
        assert conn.execute("SELECT count(*) FROM kntc.case_file").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM kntc.account")


def test_application_role_cannot_read_sessions_or_rewrite_history(pg_env):
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        for sql in ("SELECT * FROM kntc.session", "DELETE FROM kntc.case_event", "UPDATE kntc.case_event SET note = 'x'",
                    "DROP TABLE kntc.case_file"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()


def test_logout_ends_database_access(world, officer, pg_env):
    off = officer("X00004", ["handling"], 2)
    code = next(c["code"] for c in world["cases"] if c["unit"] == "X00004")
    assert sql_visible(pg_env, off.token, [code]) == {code}
    off.post("/api/auth/logout")
    assert off.get(f"/api/cases/{code}").status_code == 401
    assert sql_visible(pg_env, off.token, [code]) == set()


def test_confidential_denouncer_only_for_those_handling_the_case(officer, server, make_account):
    recorder = officer("X00004", ["reception", "handling"], 0)
    r = recorder.post("/api/cases", json=petition_body(
        kind="denunciation", denouncer_confidential=True,
        parties=[{"role": "denouncer", "full_name": "Người Tố Cáo Bí Mật", "id_number": "079190000999"}]))
    code = r.json()["code"]
    # The officer who recorded it handles it and sees the denouncer.
    assert any(p["full_name"] == "Người Tố Cáo Bí Mật" for p in recorder.get(f"/api/cases/{code}").json()["parties"])
    # A colleague in the same unit, not assigned, sees the case but not who denounced.
    colleague = officer("X00004", ["handling"], 0)
    case = colleague.get(f"/api/cases/{code}").json()
    assert case["parties"] == [] and case["hidden_parties"] is True
    assert "079190000999" not in colleague.get(f"/api/cases/{code}").text
    # The province's head reads the area, but does not handle this case.
    assert officer("T01", ["head"], 2).get(f"/api/cases/{code}").json()["parties"] == []
    # Once the head of unit assigns the colleague, the colleague sees the identity.
    head = Officer(server, make_account("X00004", ["head"], 0))
    assert head.post(f"/api/cases/{code}/assignments", json={"username": colleague.username,
                                                             "duty": "resolution"}).status_code == 201
    assert colleague.get(f"/api/cases/{code}").json()["parties"][0]["id_number"] == "079190000999"


def test_external_reader_reads_but_never_writes(officer):
    recorder = officer("X00004", ["reception"], 0)
    code = recorder.post("/api/cases", json=petition_body()).json()["code"]
    court = officer("T01-TAND", ["external_reader"], 0)
    assert court.get(f"/api/cases/{code}").status_code == 200
    assert court.post("/api/cases", json=petition_body()).status_code == 403
    r = court.post(f"/api/cases/{code}/transitions", json={"action": "submit", "version": 1})
    assert r.status_code == 403


@pytest.fixture(scope="module")
def overdue_world(officer):
    """Steps long overdue: a case received in 2025 in each unit and classification, never accepted."""
    cases = []
    for unit in CASE_UNITS:
        recorder = officer(unit, ["reception", "handling"], 2)
        for classification in (0, 2):
            r = recorder.post("/api/cases", json=petition_body(classification=classification, received_on="2025-01-02"))
            assert r.status_code == 201, r.text
            cases.append({"code": r.json()["code"], "unit": unit, "classification": classification})
    return cases


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=st.sampled_from(OFFICER_UNITS), clearance=st.sampled_from([0, 2]))
def test_the_overdue_list_names_only_the_cases_the_officer_may_read(world, overdue_world, server, make_account,
                                                                    pg_env, owner_conn, unit, clearance):
    roles = ["external_reader"] if unit in ("T01-TAND", "X00004-MTTQ") else ["handling"]
    off = Officer(server, make_account(unit, roles, clearance))
    ours = {c["code"] for c in overdue_world}
    expected = expected_visible({"cases": overdue_world, "paths": world["paths"]}, unit, clearance)
    listed = {r["code"] for r in off.get("/api/deadlines/overdue", params={"limit": 5000}).json()["data"]}
    assert listed & ours == expected
    # Asked for one commune (a wider area's head starts from its cases): exactly what the officer
    # may read there; another area's commune gives nothing of it, an unknown unit nothing, no error.
    for commune in ("X25747", "X00004", "NO-SUCH-UNIT"):
        r = off.get("/api/deadlines/overdue", params={"unit": commune, "limit": 5000})
        assert r.status_code == 200
        there = {c["code"] for c in overdue_world if c["unit"] == commune}
        assert {row["code"] for row in r.json()["data"]} & ours == expected & there
    # The step picker called directly with the application role's password names no case the
    # officer may not read (its ids are turned into codes here as the owner), and none at all
    # without a session or with a made-up token.
    picked = "SELECT case_id FROM kntc.overdue_steps(current_date, NULL, 5000)"
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        assert conn.execute(picked).fetchall() == []
        conn.execute("SELECT set_config('kntc.session_token', 'forged-token', false)")
        assert conn.execute(picked).fetchall() == []
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (off.token,))
        ids = [r[0] for r in conn.execute(picked)]
    codes = {r["code"] for r in owner_conn.execute("SELECT code FROM kntc.case_file WHERE id = ANY (%s)", (ids,))}
    assert codes & ours == expected
