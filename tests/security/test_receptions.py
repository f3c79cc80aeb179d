"""Receptions (form 03) name visitors: they follow the case rules, through the API, the pages,
their exports and SQL as the application role.

Threat rows (runbooks/security.md): T4, T5, T6, T7.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.conftest import TEST_PASSWORD, Officer, petition_body

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _visitor() -> str:
    return f"Khách Bí Mật {secrets.token_hex(4)}"


def _reception(off: Officer, visitor: str) -> str:
    r = off.post("/api/receptions", json={"visitor_name": visitor, "visitor_id_number": "001089000777",
                                          "visitor_address": "Số 9 phố Kim Mã", "content": "Đến nộp đơn."})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _web_login(server: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=server, timeout=30, follow_redirects=False)
    csrf = CSRF.search(client.get("/login").text)
    assert csrf
    r = client.post("/login", data={"username": username, "password": TEST_PASSWORD, "next": "/app",
                                    "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text
    return client


def _api_listed(off: Officer) -> str:
    r = off.get("/api/receptions", params={"per_page": 200})
    return r.text if r.status_code == 200 else ""


@pytest.fixture
def secret_case_reception(officer: Callable[..., Officer]) -> str:
    """A reception whose petition became a secret (classification 2) case; returns the visitor's name."""
    recorder = officer("X00004", ["reception"], 2)
    visitor = _visitor()
    rid = _reception(recorder, visitor)
    r = recorder.post("/api/cases", json=petition_body(classification=2, reception_id=rid))
    assert r.status_code == 201, r.text
    return visitor


@pytest.fixture
def protected_denouncer_reception(officer: Callable[..., Officer]) -> tuple[Officer, str]:
    """A reception whose petition became a denunciation protecting its denouncer: (recorder, visitor)."""
    recorder = officer("X00004", ["reception"])
    visitor = _visitor()
    rid = _reception(recorder, visitor)
    body = petition_body(kind="denunciation", denouncer_confidential=True, reception_id=rid,
                         parties=[{"role": "denouncer", "full_name": visitor, "id_number": "001089000777"}])
    r = recorder.post("/api/cases", json=body)
    assert r.status_code == 201, r.text
    return recorder, visitor


def test_reception_officer_without_clearance_cannot_list_the_reception_of_a_secret_case(
        officer, make_account, server, secret_case_reception):
    visitor = secret_case_reception
    colleague = officer("X00004", ["reception"], 0)
    assert visitor not in _api_listed(colleague)
    web = _web_login(server, colleague.username)
    page = web.get("/app/reception")
    assert page.status_code == 200 and visitor not in page.text
    for fmt in ("csv", "xlsx"):
        export = web.get("/app/reception", params={"format": fmt})
        assert export.status_code == 200
        assert visitor.encode() not in export.content


def test_external_reader_cannot_list_receptions_through_the_api_or_the_pages(officer, server, make_account):
    recorder = officer("X00004", ["reception"])
    visitor = _visitor()
    _reception(recorder, visitor)
    court = officer("T01-TAND", ["external_reader"], 2)
    r = court.get("/api/receptions")
    assert r.status_code == 403 and visitor not in r.text
    web = _web_login(server, court.username)
    for params in ({}, {"format": "csv"}):
        page = web.get("/app/reception", params=params)
        assert page.status_code == 403 and visitor not in page.text


def test_colleague_not_handling_the_case_cannot_learn_a_protected_denouncers_name_from_receptions(
        officer, server, protected_denouncer_reception):
    recorder, visitor = protected_denouncer_reception
    colleague = officer("X00004", ["reception"], 2)
    listed = colleague.get("/api/receptions", params={"per_page": 200})
    assert listed.status_code == 200 and visitor not in listed.text
    # The row itself stays (the officer knows a reception took place), without the identity.
    assert any(r["identity_protected"] and r["visitor_name"] is None for r in listed.json()["data"])
    web = _web_login(server, colleague.username)
    assert visitor not in web.get("/app/reception").text
    assert visitor.encode() not in web.get("/app/reception", params={"format": "csv"}).content
    # The officer who recorded the case handles it and still sees who came.
    assert visitor in recorder.get("/api/receptions", params={"per_page": 200}).text


def test_application_role_cannot_read_a_protected_visitors_name_from_the_reception_table(
        officer, pg_env, protected_denouncer_reception):
    _, visitor = protected_denouncer_reception
    colleague = officer("X00004", ["reception"], 2)
    with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as conn:
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (colleague.token,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT visitor_name FROM kntc.reception").fetchall()
        conn.rollback()
        conn.execute("SELECT set_config('kntc.session_token', %s, false)", (colleague.token,))
        names = [r[0] for r in conn.execute("SELECT visitor_name FROM kntc.reception_entry").fetchall()]
    assert visitor not in names
