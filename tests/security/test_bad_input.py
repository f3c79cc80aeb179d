"""A NUL character is bad input (4xx, in both languages), never a 503 'database unavailable':
operators page on 503, so a fuzzer or a prankster must not be able to raise one.

Threat rows (runbooks/security.md): T33.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import petition_body

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _is_bad_input(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        assert body["message"] and body["message_en"], body
    assert "Traceback" not in r.text


def test_nul_in_the_lookup_body_is_refused_as_bad_input_not_an_outage(server):
    r = httpx.post(server + "/api/lookup", json={"code": "X00004-2026-000001", "secret": "AAAA-BBBB\x00-CCCC-DDDD"})
    _is_bad_input(r)
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"


@pytest.mark.parametrize("params", [{"q": "lap den\x00 duong"}, {"person": "Nguy\x00en"}, {"code": "X0\x00"}])
def test_nul_in_a_search_query_string_is_refused_as_bad_input_not_an_outage(officer, params):
    off = officer("X00004", ["handling"])
    _is_bad_input(off.get("/api/search", params=params))


@pytest.mark.parametrize("field", ["subject", "content", "respondent"])
def test_nul_in_a_recorded_petition_is_refused_as_bad_input_not_an_outage(officer, field):
    off = officer("X00004", ["reception"])
    r = off.post("/api/cases", json=petition_body(**{field: "Khiếu nại\x00 về đất đai"}))
    _is_bad_input(r)


def test_nul_in_a_case_code_path_is_refused_as_bad_input_not_an_outage(officer):
    off = officer("X00004", ["reception"])
    _is_bad_input(off.get("/api/cases/X00004-2026%00-000001"))


def test_nul_in_a_session_cookie_is_a_refusal_not_an_outage(server):
    # The cookie parser turns the octal escape back into a NUL, which reaches set_config().
    r = httpx.get(server + "/api/cases", headers={"Cookie": 'kntc_session="abc\\000def"'})
    assert r.status_code in (400, 401), (r.status_code, r.text[:300])


def test_nul_in_a_web_form_field_is_a_page_not_an_outage(server):
    client = httpx.Client(base_url=server, timeout=30)
    csrf = CSRF.search(client.get("/lookup").text)
    assert csrf
    r = client.post("/lookup", data={"code": "X00004\x00-2026", "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF",
                                     "csrf": csrf.group(1)}, headers={"X-Real-IP": "198.51.100.200"})
    _is_bad_input(r)
    assert r.headers["content-type"].startswith("text/html")
