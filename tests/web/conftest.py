"""A browser-like HTTP client for the web pages: cookies, the CSRF token of each form, no JavaScript."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import TEST_PASSWORD, own_address

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CHECK_ID = re.compile(r'name="dedup_check_id" value="([^"]+)"')


class WebUser:
    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30, follow_redirects=False,
                                   headers={"X-Real-IP": own_address()})
        self.csrf = ""

    def get(self, url: str, **kw) -> httpx.Response:
        r = self.client.get(url, **kw)
        m = CSRF.search(r.text) if r.headers.get("content-type", "").startswith("text/html") else None
        if m:
            self.csrf = m.group(1)
        return r

    def post(self, url: str, data: dict | None = None, csrf: bool = True, **kw) -> httpx.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf", self.csrf)
        r = self.client.post(url, data=body, **kw)
        m = CSRF.search(r.text) if r.headers.get("content-type", "").startswith("text/html") else None
        if m:
            self.csrf = m.group(1)
        return r

    def record(self, form: dict) -> httpx.Response:
        """Record a petition through the intake form: the duplicate check page first, then "a new
        matter" (the answer of the second step: 303 to the receipt, or the form again with errors)."""
        r = self.post("/app/cases/new", form)
        m = CHECK_ID.search(r.text)
        if r.status_code != 200 or not m:
            return r
        return self.post("/app/cases/new", {**form, "dedup_check_id": m.group(1), "dedup_decision": "new"})

    def login(self, username: str, password: str = TEST_PASSWORD, code: str | None = None) -> httpx.Response:
        self.get("/login")
        r = self.post("/login", {"username": username, "password": password, "next": "/app"} | (
            {"code": code} if code else {}))
        if r.status_code == 303:
            self.get(r.headers["location"])  # the page it lands on: /app, or the setup of a new account
        return r


@pytest.fixture
def web(server: str) -> Callable[[], WebUser]:
    return lambda: WebUser(server)


@pytest.fixture
def web_officer(server: str, make_account: Callable[..., str]) -> Callable[..., WebUser]:
    def make(unit: str, roles: list[str], clearance: int = 0) -> WebUser:
        user = WebUser(server)
        r = user.login(make_account(unit, roles, clearance))
        assert r.status_code == 303, r.text
        return user
    return make
