"""The gate's answers keep their shape: the account JSON of login and /me, role refusals on both faces."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import TEST_PASSWORD, Officer


def test_me_and_login_answer_the_same_account_shape(server: str, make_account: Callable[..., str]):
    username = make_account("X00004", ["reception", "handling"], 1)
    login = httpx.post(server + "/api/auth/login", json={"username": username, "password": TEST_PASSWORD})
    account = login.json()["account"]
    me = httpx.get(server + "/api/auth/me",
                   headers={"Authorization": f"Bearer {login.json()['token']}"}).json()
    assert me == account
    assert set(me) == {"account_id", "unit_id", "roles", "clearance", "unit_code", "unit_name", "unit_level"}
    assert sorted(me["roles"]) == ["handling", "reception"] and me["clearance"] == 1 and me["unit_code"] == "X00004"


def test_reception_officer_cannot_take_a_head_only_page_or_call(server: str, make_account: Callable[..., str]):
    """Role checks come from the gate: a 403 JSON answer on the API, a 403 page on the web."""
    username = make_account("X00004", ["reception"])
    client = Officer(server, username).client
    r = client.get("/api/accounts")
    assert r.status_code == 403 and r.json()["error"] == "role_not_allowed"
    token = client.headers["Authorization"].split()[1]
    page = httpx.get(server + "/app/overview", cookies={"kntc_session": token}, follow_redirects=False)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
