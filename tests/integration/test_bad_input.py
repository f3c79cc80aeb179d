"""Bad input gets a clear 4xx with a message; never a 500 or a traceback, and nothing is lost."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import petition_body

BAD_BODIES = [
    ({"kind": "rumour"}, "kind"),
    ({"subject": ""}, "subject"),
    ({"channel": "pigeon"}, "channel"),
    ({"classification": 7}, "classification"),
    ({"parties": []}, "parties"),
    ({"parties": [{"role": "complainant", "full_name": "An", "id_number": "12345"}]}, "id_number"),
    ({"parties": [{"role": "complainant", "full_name": "An", "email": "not-an-email"}]}, "email"),
    ({"received_on": "2026-02-30"}, "received_on"),
    ({"received_on": "2999-01-01"}, "received_on"),
    ({"unexpected": 1}, "unexpected"),
    ({"kind": "complaint", "denouncer_confidential": True}, "denouncer_confidential"),
    ({"parties": [{"role": "complainant", "full_name": "An", "address_unit": "NOPE99"}]}, "address_unit"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_bad_petition_is_refused_with_a_message(officer, change, field):
    off = officer("X00004", ["reception"])
    r = off.post("/api/cases", json=petition_body(**change))
    assert 400 <= r.status_code < 500, r.text
    payload = r.json()
    assert payload["message"] and payload["message_en"]
    assert field in r.text
    assert "Traceback" not in r.text


def test_classified_above_clearance_is_refused(officer):
    off = officer("X00004", ["reception"], 0)
    r = off.post("/api/cases", json=petition_body(classification=2))
    assert r.status_code == 400 and r.json()["field"] == "classification"


@pytest.mark.parametrize(("method", "url", "body", "status"), [
    ("post", "/api/auth/login", {"username": "nobody", "password": "x"}, 401),
    ("post", "/api/auth/login", {"username": ""}, 422),
    ("get", "/api/cases/NO-SUCH-CODE", None, 404),
    ("post", "/api/cases/NO-SUCH-CODE/transitions", {"action": "accept", "version": 1}, 404),
    ("get", "/api/cases?after=not-a-cursor", None, 400),
    ("get", "/api/cases?received_from=yesterday", None, 422),
    ("post", "/api/lookup", {"code": "X", "secret": "short"}, 422),
    ("get", "/api/units/ZZZ", None, 404),
    ("delete", "/api/cases", None, 405),
])
def test_api_errors_are_4xx_with_a_message(officer, method, url, body, status):
    off = officer("X00004", ["reception"])
    r = getattr(off.client, method)(url, **({"json": body} if body is not None else {}))
    assert r.status_code == status, r.text
    assert r.json()["message"]


def test_malformed_json_is_a_4xx(officer):
    off = officer("X00004", ["reception"])
    r = off.client.post("/api/cases", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"


def test_unauthenticated_calls_are_401(server):
    import httpx

    r = httpx.get(server + "/api/cases")
    assert r.status_code == 401 and r.json()["error"] == "login_required"
    r = httpx.get(server + "/api/cases", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401 and r.json()["error"] == "session_expired"


def test_repeated_wrong_passwords_slow_that_address_not_the_account(server, make_account):
    import httpx

    username = make_account("X00004", ["reception"])
    attacker, officer = {"X-Real-IP": "192.0.2.41"}, {"X-Real-IP": "192.0.2.42"}
    statuses = []
    while 429 not in statuses and len(statuses) < 10:  # three free failures, then a wait of 1 s, 2 s, ...
        statuses.append(httpx.post(server + "/api/auth/login", json={"username": username, "password": "wrong-pass-1"},
                                   headers=attacker).status_code)
    assert statuses[:4] == [401] * 4 and statuses[-1] == 429, statuses
    r = httpx.post(server + "/api/auth/login", json={"username": username, "password": "Test-password-2026"},
                   headers=attacker)
    assert r.status_code == 429 and r.json()["error"] == "login_throttled" and "giây" in r.json()["message"]
    r = httpx.post(server + "/api/auth/login", json={"username": username, "password": "Test-password-2026"},
                   headers=officer)
    assert r.status_code == 200


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from([*petition_body().keys(), "version", "action"]), value=json_values)
def test_no_input_makes_a_500(officer_session, field, value):
    body = petition_body()
    body[field] = value
    r = officer_session.post("/api/cases", json=body)
    assert r.status_code < 500, r.text
    r = officer_session.post("/api/cases/X00004-2026-000001/transitions", json={"action": "accept", field: value})
    assert r.status_code < 500, r.text


@pytest.fixture(scope="module")
def officer_session(officer):
    return officer("X00004", ["reception", "handling"])
