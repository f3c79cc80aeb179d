"""Attacks on the login and API budgets: a password spray from one address, locking an officer out
with wrong passwords, a fresh X-Real-IP per try, and counting on a second app host to reset the count.

Each test speaks for its own client addresses (X-Real-IP from the loopback proxy, as nginx sends
it, or a loopback source address of its own), so the addresses the rest of the suite uses keep
their budgets.

Threat rows (runbooks/security.md): T8, T9, T10, T11, T12, T13, T109.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from core_app.call_counts import EVERY_S
from tests.conftest import TEST_PASSWORD, petition_body, running_server


def address() -> str:
    return f"198.18.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"


def login(base: str, username: str, password: str, addr: str | None = None, **kw) -> httpx.Response:
    headers = {"X-Real-IP": addr} if addr else {}
    with httpx.Client(base_url=base, timeout=30, **kw) as c:
        return c.post("/api/auth/login", json={"username": username, "password": password}, headers=headers)


@pytest.fixture(scope="module")
def second_server(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another app host on the same database: a separate server process with its own workers."""
    with running_server(pg_env, tmp_path_factory.mktemp("second") / "server.log", workers=1) as url:
        yield url


def test_password_spray_from_one_address_across_20_accounts_is_stopped(server, make_account):
    accounts = [make_account("X00004", ["reception"]) for _ in range(20)]
    addr = address()
    statuses = [login(server, name, "Mua-xuan-2026!", addr).status_code for name in accounts]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
    r = login(server, accounts[-1], "Mua-xuan-2026!", addr)
    assert "từ máy này" in r.json()["message"] and int(r.headers["retry-after"]) > 0
    # The spraying address is stopped even with the right password of an account it never used...
    assert login(server, make_account("X00004", ["reception"]), TEST_PASSWORD, addr).status_code == 429
    # ...and every other address is untouched.
    assert login(server, accounts[0], TEST_PASSWORD, address()).status_code == 200


def test_a_fresh_x_real_ip_per_try_does_not_escape_the_budget(server, make_account):
    """From a peer that is not the trusted proxy the header is ignored: the peer's address counts."""
    accounts = [make_account("X00004", ["reception"]) for _ in range(12)]
    peer = f"127.{1 + secrets.randbelow(250)}.{secrets.randbelow(256)}.{2 + secrets.randbelow(250)}"
    transport = httpx.HTTPTransport(local_address=peer)
    statuses = [login(server, name, "Mua-xuan-2026!", address(), transport=transport).status_code
                for name in accounts]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses


def test_an_attackers_100_failures_do_not_lock_the_officer_out(server, make_account):
    officer = make_account("X00004", ["handling"])
    attacker, home = address(), address()
    statuses = [login(server, officer, f"doan-mat-khau-{i}", attacker).status_code for i in range(100)]
    assert login(server, officer, TEST_PASSWORD, home).status_code == 200
    # The attacker's tries are refused before the password is checked, but for a few spaced out by
    # waits of 1 s, 2 s, 4 s ... (20 checks in 15 minutes at most).
    assert statuses.count(401) <= 12, statuses


def test_two_server_processes_share_one_counter(server, second_server, make_account):
    accounts = [make_account("X00004", ["reception"]) for _ in range(12)]
    addr = address()
    hosts = [server, second_server]
    statuses = [login(hosts[i % 2], name, "Mua-xuan-2026!", addr).status_code for i, name in enumerate(accounts)]
    # Five failures on each host are ten on the one budget: the eleventh is refused, on either.
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses


def test_guessing_lookup_secrets_through_the_api_gets_slow(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30, headers={"X-Real-IP": address()}) as c:
        def guess(i: int) -> float:
            t0 = time.monotonic()
            r = c.post("/api/lookup", json={"code": f"X00004-2026-98{i:04d}", "secret": "AAAA-BBBB-CCCC-DDDD"})
            assert r.status_code == 404
            return time.monotonic() - t0

        took = [guess(i) for i in range(6)]
    # Three free failures, then each waits 1 s, 2 s, 4 s ... after the last (counted on the database).
    assert sum(took[4:]) >= 2.5, took


def test_a_session_flooding_the_api_is_stopped(officer, owner_conn):
    """The budget is data; lowered here for a moment so that a flood is a few calls, not 600."""
    flooder = officer("X00004", ["reception"])
    owner_conn.execute("UPDATE kntc.throttle_rule SET max_hits = 5 WHERE purpose = 'api_session'")
    try:
        statuses = [flooder.get("/api/auth/me").status_code for _ in range(8)]
        other = officer("X00004", ["reception"]).get("/api/auth/me").status_code
    finally:
        owner_conn.execute("UPDATE kntc.throttle_rule SET max_hits = 600 WHERE purpose = 'api_session'")
    assert statuses[:5] == [200] * 5 and set(statuses[5:]) == {429}, statuses
    assert other == 200  # another session has its own budget


def _shared(owner_conn, token: str) -> int:
    key = hashlib.sha256(token.encode()).hexdigest()
    row = owner_conn.execute("SELECT hits FROM kntc.throttle WHERE purpose = 'api_session' AND key = %s",
                             (key,)).fetchone()
    return row["hits"] if row else 0


def _hits(owner_conn, token: str, expect: int | None = None) -> int:
    """The session's shared count once the server's processes have added what they counted (each adds
    its calls every EVERY_S, later on a busy machine): with `expect`, once it reaches that and one
    more batch has had time to come; without, once it holds still over two batches. At most 20 s."""
    deadline = time.monotonic() + 20
    last = _shared(owner_conn, token)
    while True:
        time.sleep(4 * EVERY_S)
        now = _shared(owner_conn, token)
        settled = now >= expect if expect is not None else now == last
        if settled or time.monotonic() > deadline:
            break
        last = now
    if expect is not None:
        time.sleep(4 * EVERY_S)
        now = _shared(owner_conn, token)
    return now


@pytest.fixture(scope="module", autouse=True)
def api_session_window_of_a_day(owner_conn) -> Iterator[None]:
    """The tests compare a session's count before and after calls that take seconds to settle; a
    minute's window turning over between the two would start the count again. A day's window for
    this module (the rule is data), the minute again after."""
    owner_conn.execute("UPDATE kntc.throttle_rule SET window_s = 86400 WHERE purpose = 'api_session'")
    yield
    owner_conn.execute("UPDATE kntc.throttle_rule SET window_s = 60 WHERE purpose = 'api_session'")


@pytest.fixture
def api_session_budget(owner_conn) -> Iterator[Callable[[int], None]]:
    """Lower the per-session budget for a test (it is data); 600 again after."""
    def lower(hits: int) -> None:
        owner_conn.execute("UPDATE kntc.throttle_rule SET max_hits = %s WHERE purpose = 'api_session'", (hits,))
    yield lower
    lower(600)


def test_an_officer_session_flooding_the_api_is_stopped_whichever_process_serves_it(officer, owner_conn,
                                                                                    api_session_budget, server,
                                                                                    second_server):
    """Each server process counts the calls it serves and adds them in batches. Served by one
    process, no call passes the budget (the last one may be refused early: judged while the process
    added the call before it, that call counts twice for it); a flood that two processes serve at
    once passes it by at most what the other process had not added yet (each process refuses once
    the calls it counted and the shared counter reach the budget), every call counts, and once
    added all are refused."""
    o = officer("X00004", ["reception"])
    api_session_budget(_hits(owner_conn, o.token) + 5)
    with httpx.Client(base_url=second_server, timeout=30, headers={"Authorization": f"Bearer {o.token}"}) as one:
        statuses = [one.get("/api/cases?scope=unit").status_code for _ in range(8)]
    served = statuses.count(200)
    assert served in (4, 5) and statuses == [200] * served + [429] * (8 - served), statuses

    flooder = officer("X00004", ["reception"])
    spent = _hits(owner_conn, flooder.token)
    api_session_budget(spent + 5)

    def call(_: int) -> int:
        with httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {flooder.token}"}) as c:
            return c.get("/api/cases?scope=unit").status_code

    with ThreadPoolExecutor(8) as pool:
        flood = list(pool.map(call, range(40)))
    assert set(flood) <= {200, 429} and flood.count(200) <= 2 * 5 and 429 in flood, flood
    assert _hits(owner_conn, flooder.token, spent + 40) == spent + 40  # every call counted, the refused ones too
    assert [flooder.get("/api/cases?scope=unit").status_code for _ in range(4)] == [429] * 4
    # another session of the same officer has its own budget
    assert officer("X00004", ["reception"]).get("/api/cases?scope=unit").status_code == 200


def test_every_call_of_a_session_counts_once_whatever_became_of_it(officer, owner_conn):
    """An officer's call is counted as it arrives, before anything else: a call whose transaction
    rolled back (a case that is not there, a refused transition) or that never opened one (a body
    the route refused) counts as one, so errors are no free calls."""
    o = officer("X00004", ["reception"])
    calls = [
        ("read a list", lambda: o.get("/api/cases?scope=unit"), 200),
        ("a case that is not there", lambda: o.get("/api/cases/X00004-2026-999999"), 404),
        ("a body the route refuses", lambda: o.client.post("/api/cases", json={"kind": 7}), 422),
        ("a transition on nothing", lambda: o.post("/api/cases/X00004-2026-999998/transitions",
                                                   json={"action": "submit", "version": 1}), 404),
        ("who am I (the login routes)", lambda: o.get("/api/auth/me"), 200),
    ]
    for what, call, status in calls:
        before = _hits(owner_conn, o.token)
        got = call()
        assert got.status_code == status, (what, got.text)
        assert _hits(owner_conn, o.token, before + 1) == before + 1, what


def test_a_write_over_the_budget_is_refused_and_leaves_nothing(officer, owner_conn, api_session_budget):
    """The budget is judged in the write's own transaction, before its work: the call past it gets
    429, counts, and the case it would have recorded does not exist."""
    o = officer("X00004", ["reception"])
    body = petition_body(subject=f"Vượt ngân sách {secrets.token_hex(4)}")
    check = o.check_for(body)
    assert check
    spent = _hits(owner_conn, o.token)
    api_session_budget(spent)
    got = o.client.post("/api/cases", json={**body, "dedup_check_id": check})
    assert got.status_code == 429, got.text
    assert int(got.headers["Retry-After"]) >= 1 and got.json()["error"] == "too_many_requests"
    assert _hits(owner_conn, o.token, spent + 1) == spent + 1
    assert owner_conn.execute("SELECT count(*) FROM kntc.case_file WHERE subject = %s",
                              (body["subject"],)).fetchone()["count"] == 0


def test_calls_of_one_session_at_once_are_all_served_and_all_count(officer, owner_conn, server):
    """No lock on the counter while a call runs: calls of one session sent together are all served,
    none refused for it, and each counts."""
    o = officer("X00004", ["reception"])
    before = _hits(owner_conn, o.token)

    def call(_: int) -> int:
        with httpx.Client(base_url=server, timeout=30, headers={"Authorization": f"Bearer {o.token}"}) as c:
            return c.get("/api/cases?scope=unit").status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, range(24)))
    assert statuses == [200] * 24
    assert _hits(owner_conn, o.token, before + 24) == before + 24


def test_the_app_role_adds_only_whole_api_calls(pg_env):
    """Whoever holds the application's role may add calls to an API budget, not spend an officer's
    login budget in one call nor give a session calls back."""
    for purpose, counts, error in (("login_pair", [1000], psycopg.errors.InsufficientPrivilege),
                                   ("login_account", [1], psycopg.errors.InsufficientPrivilege),
                                   ("api_session", [-600], psycopg.errors.InvalidParameterValue),
                                   ("api_session", [0], psycopg.errors.InvalidParameterValue),
                                   ("api_session", [1, 1], psycopg.errors.InvalidParameterValue)):
        with psycopg.connect(pg_env["KNTC_DATABASE_URL"]) as app, pytest.raises(error):
            app.execute("SELECT kntc.throttle_add(%s, %s, %s)", (purpose, ["someone|198.18.0.1"], counts))
