"""One gate for the API and the pages: a session left idle is over, whichever door it knocks on.

These tests run their own server with an idle limit of a few seconds (KNTC_IDLE_SECONDS), so that
waiting past it takes seconds, not half an hour.

Threat rows (runbooks/security.md): T18, T19.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import TEST_PASSWORD, Officer, running_server

# Long enough that a request delayed by a busy machine (the full test run shares two cores with the
# lab) does not leave the token idle between two uses a third of the limit apart.
IDLE_S = 6
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def short_idle_server(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server({**pg_env, "KNTC_IDLE_SECONDS": str(IDLE_S)},
                        tmp_path_factory.mktemp("idle-server") / "server.log") as url:
        yield url


def test_api_token_left_idle_past_the_limit_is_refused(short_idle_server: str, make_account: Callable[..., str]):
    client = Officer(short_idle_server, make_account("X00004", ["reception"])).client
    # In use, the token outlives the idle limit many times over ...
    until = time.monotonic() + 2 * IDLE_S
    while time.monotonic() < until:
        assert client.get("/api/auth/me").status_code == 200
        time.sleep(IDLE_S / 3)
    # ... left alone past it (a stolen token replayed later, an unlocked PC), it is refused.
    time.sleep(IDLE_S + 1.5)
    r = client.get("/api/cases")
    assert r.status_code == 401 and r.json()["error"] == "idle", r.text
    assert r.json()["message"] and r.json()["message_en"]
    # The session was closed: coming back at once does not revive it.
    r = client.get("/api/auth/me")
    assert r.status_code == 401 and r.json()["error"] == "session_expired"


def test_web_session_left_idle_past_the_limit_must_log_in_again(short_idle_server: str,
                                                               make_account: Callable[..., str]):
    web = httpx.Client(base_url=short_idle_server, timeout=30, follow_redirects=False)
    csrf = CSRF.search(web.get("/login").text)
    assert csrf
    r = web.post("/login", data={"username": make_account("X00004", ["reception"]), "password": TEST_PASSWORD,
                                 "next": "/app", "csrf": csrf.group(1)})
    assert r.status_code == 303 and web.get("/app").status_code == 200
    time.sleep(IDLE_S + 1.5)
    r = web.get("/app/reception")
    assert r.status_code == 303 and "reason=idle" in r.headers["location"]
