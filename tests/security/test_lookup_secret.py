"""A citizen's lookup secret is not sent in a URL (proxies and access logs keep URLs), and no
secret, token or password reaches the application's own log.

Threat rows (runbooks/security.md): T34, T35.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_PASSWORD, petition_body, running_server


@pytest.fixture(scope="module")
def logged_server(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real server with its output kept in a file the test reads: (url, log path)."""
    log = tmp_path_factory.mktemp("logged-server") / "server.log"
    with running_server(pg_env, log, workers=1) as url:
        yield url, log


def _recorded(post, auth: dict[str, str]) -> dict:
    """A petition recorded as the intake does: the duplicate check, then the case under it."""
    body = petition_body()
    parties = [{k: p[k] for k in ("full_name", "id_number", "address_unit")} for p in body["parties"]]
    check = post("/api/dedup/check", json={"parties": parties, "subject": body["subject"]}, headers=auth).json()
    return post("/api/cases", json={**body, "dedup_check_id": check["check_id"]}, headers=auth).json()


def test_lookup_secret_in_the_url_is_refused_and_in_the_body_is_answered(logged_server, make_account):
    url, _ = logged_server
    off = httpx.Client(base_url=url, timeout=30)
    token = off.post("/api/auth/login", json={"username": make_account("X00004", ["reception"]),
                                              "password": TEST_PASSWORD}).json()["token"]
    made = _recorded(off.post, {"Authorization": f"Bearer {token}"})
    code, secret = made["code"], made["lookup_secret"]
    assert httpx.get(url + "/api/lookup", params={"code": code, "secret": secret}).status_code == 405
    r = httpx.post(url + "/api/lookup", json={"code": code, "secret": secret})
    assert r.status_code == 200 and r.json()["code"] == code
    r = httpx.post(url + "/api/lookup", json={"code": code, "secret": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"})
    assert r.status_code == 404


def test_secrets_tokens_and_passwords_never_reach_the_server_log(logged_server,
                                                                  make_account: Callable[..., str]):
    url, log = logged_server
    username = make_account("X00004", ["reception"])
    login = httpx.post(url + "/api/auth/login", json={"username": username, "password": TEST_PASSWORD})
    token = login.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    made = _recorded(lambda path, **kw: httpx.post(url + path, **kw), auth)
    secret = made["lookup_secret"]
    wrong_password = "Wrong-password-" + token[:8]
    tried = "ZZZZ-YYYY-XXXX-WWWW-VVVV-UUUU"
    # Ordinary use, and the paths that log: errors, bad input, refusals.
    assert httpx.post(url + "/api/lookup", json={"code": made["code"], "secret": secret}).status_code == 200
    assert httpx.post(url + "/api/lookup", json={"code": made["code"], "secret": tried}).status_code == 404
    assert httpx.post(url + "/api/lookup", json={"code": made["code"], "secret": tried + "\x00"}).status_code == 422
    assert httpx.post(url + "/api/auth/login", json={"username": username, "password": wrong_password}
                      ).status_code == 401
    assert httpx.get(url + "/api/cases", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert httpx.post(url + "/api/auth/logout", headers=auth).status_code == 200
    time.sleep(0.5)  # the worker writes its log asynchronously
    text = log.read_text()
    for value in (secret, secret.replace("-", ""), tried, token, wrong_password, TEST_PASSWORD):
        assert value not in text, f"{value[:6]}… is in the server log"
