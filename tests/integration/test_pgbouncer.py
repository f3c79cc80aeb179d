"""The case service through a real PgBouncer (Debian's 1.18) in transaction mode, as the app hosts
run it (role pgbouncer): one server connection shared by every officer still shows each only what
is theirs, a PAUSE is a wait and not an error, and a pooler that does not bound the waits is
refused before the service answers anyone.

Threat rows (runbooks/security.md): T103.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from core_app.localdb import LocalCluster
from core_app.waits import APP_WAITS, WaitsNotSet
from tests.conftest import BIN, TEST_PASSWORD, Officer, free_port, petition_body, running_server
from tests.pgbouncer_support import Bouncer, pgbouncer, users_of

WAITS = {"statement_timeout": 15_000, "lock_timeout": 5_000, "idle_in_transaction_session_timeout": 30_000}


def through(bouncer: Bouncer, pg_env: dict[str, str]) -> dict[str, str]:
    return {**pg_env, "KNTC_DATABASE_POOLER": "pgbouncer",
            "KNTC_DATABASE_URL": bouncer.dsn(pg_env["KNTC_DATABASE_URL"]),
            "KNTC_AUTH_DATABASE_URL": bouncer.dsn(pg_env["KNTC_AUTH_DATABASE_URL"]),
            "KNTC_STATEMENT_TIMEOUT_MS": str(WAITS["statement_timeout"]),
            "KNTC_LOCK_TIMEOUT_MS": str(WAITS["lock_timeout"]),
            "KNTC_IDLE_IN_TRANSACTION_TIMEOUT_MS": str(WAITS["idle_in_transaction_session_timeout"])}


@pytest.fixture(scope="module")
def bouncer(cluster: LocalCluster, pg_env: dict[str, str]) -> Iterator[Bouncer]:
    waits = "; ".join(f"SET {name} = {WAITS[name]}" for name in APP_WAITS)
    with pgbouncer(cluster.server, cluster.port, "kntc_test", users_of(pg_env), waits) as b:
        yield b


@pytest.fixture(scope="module")
def pooled(bouncer: Bouncer, pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(through(bouncer, pg_env), tmp_path_factory.mktemp("pooled") / "server.log") as url:
        yield url


@pytest.fixture
def login(pooled: str, make_account: Callable[..., str]) -> Callable[..., Officer]:
    return lambda unit, roles, clearance=0: Officer(pooled, make_account(unit, roles, clearance), TEST_PASSWORD)


def test_officers_sharing_one_server_connection_each_see_only_their_own(login: Callable[..., Officer]) -> None:
    here = login("X00004", ["reception", "handling"])
    there = login("X00008", ["reception", "handling"])
    mine = here.post("/api/cases", json=petition_body())
    assert mine.status_code in (200, 201), mine.text
    code = mine.json()["code"]
    # Interleaved on the one server connection: the token of the transaction before never carries over.
    for _ in range(5):
        assert here.get(f"/api/cases/{code}").status_code == 200
        assert there.get(f"/api/cases/{code}").status_code == 404
        assert code not in there.get("/api/cases").text
    assert here.client.post("/api/auth/logout").status_code in (200, 204)
    assert here.get(f"/api/cases/{code}").status_code == 401


def test_many_officers_at_once_through_one_server_connection_all_get_their_answer(
        login: Callable[..., Officer]) -> None:
    """Concurrent requests on the one server connection, each a transaction of several statements:
    PgBouncer 1.18 hands a server connection on while a pipelining client still waits for an
    answer (requests then hang), so the service sends no pipelines through it."""
    officers = [login("X00004", ["reception", "handling"]) for _ in range(3)]
    recorded = [o.post("/api/cases", json=petition_body()) for o in officers]
    assert all(r.status_code in (200, 201) for r in recorded), \
        [r.text for r in recorded]
    codes = [r.json()["code"] for r in recorded]
    answers: list[tuple[int, float]] = []

    def work(o: Officer, code: str) -> None:
        for _ in range(25):
            started = time.monotonic()
            status = o.get(f"/api/cases/{code}").status_code
            answers.append((status, time.monotonic() - started))
            answers.append((o.get("/api/cases").status_code, 0.0))

    threads = [threading.Thread(target=work, args=(o, c)) for o, c in zip(officers, codes, strict=True)
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == 6 * 50 and {status for status, _ in answers} == {200}, sorted(set(answers))[:5]
    assert max(seconds for _, seconds in answers) < 10


def test_a_pause_at_the_pooler_is_a_short_wait_not_an_error(bouncer: Bouncer, login: Callable[..., Officer]) -> None:
    """As in a planned switchover: PAUSE, the leader changes, RESUME; requests in between wait."""
    off = login("X00004", ["reception", "handling"])
    recorded = off.post("/api/cases", json=petition_body())
    assert recorded.status_code in (200, 201), recorded.text
    code = recorded.json()["code"]
    bouncer.console("PAUSE kntc_test")
    answers: list[tuple[int, float]] = []

    def read() -> None:
        started = time.monotonic()
        r = off.get(f"/api/cases/{code}")
        answers.append((r.status_code, time.monotonic() - started))

    try:
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(2.0)
        assert not answers, "a request was answered while the pooler was paused"
    finally:
        bouncer.console("RESUME kntc_test")
    reader.join(20)
    assert answers and answers[0][0] == 200, answers
    assert answers[0][1] >= 1.9, answers


def test_a_pooler_that_does_not_bound_the_waits_is_refused(cluster: LocalCluster, pg_env: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core_app.db import Database
    from core_app.settings import Settings

    with pgbouncer(cluster.server, cluster.port, "kntc_test", users_of(pg_env), connect_query=None) as loose:
        for key, value in through(loose, pg_env).items():
            if key.startswith("KNTC_"):
                monkeypatch.setenv(key, value)
        db = Database(Settings())

        async def start() -> None:
            try:
                await db.open()
            finally:
                await db.close()

        with pytest.raises(WaitsNotSet, match=r"do not bound the waits \(.*statement_timeout is \d+ ms, not 15000"):
            asyncio.run(start())
        # `kntc serve` says so in one line before any worker starts.
        env = {**os.environ, **{k: v for k, v in through(loose, pg_env).items() if k.startswith("KNTC_")}}
        refused = subprocess.run([str(BIN / "kntc"), "serve", "--port", str(free_port())], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
        assert "do not bound the waits" in refused.stderr and "Traceback" not in refused.stderr + refused.stdout
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
