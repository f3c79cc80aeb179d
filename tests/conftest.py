"""Shared fixtures: a real PostgreSQL 15 cluster started by the test session, a fresh migrated
database, and the real server (granian) in a subprocess. Nothing is mocked.

Each test makes its own data (accounts and cases with unique names), so tests do not depend on
each other's order; the database is dropped and recreated at the start of every session, which
also copes with whatever an interrupted earlier run left behind.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from core_app.localdb import LocalCluster
from tests.ports import FIRST, LAST, free_block

ROOT = Path(__file__).resolve().parent.parent
TEST_PASSWORD = "Test-password-2026"
BIN = Path(sys.executable).parent


# Quick and self-contained tests first; the lab's own checks before the drills, which switch sites
# and fence clusters (a drill that fails half-way must not make every lab check after it fail too).
_ORDER = ["unit", "integration", "dedup", "security", "exchange", "dr", "web", "load", "browser", "infra", "drills"]


def _rank(item: pytest.Item) -> int:
    try:
        top = Path(str(item.path)).relative_to(ROOT / "tests").parts[0]
    except (ValueError, IndexError):  # a test file given from outside tests/
        return len(_ORDER)
    return _ORDER.index(top) if top in _ORDER else len(_ORDER)


def _choose_test_port() -> None:
    """Choose the test clusters' ports (the session's on KNTC_TEST_PG_PORT, the DR tests' on the next
    four) unless they are given: the first block of five that no one else listens on, so that a
    cluster another checkout left running does not make every database test error. At import, not
    in a hook: pytest imports the conftest of a folder named on its command line (tests/dr) before
    any hook runs, and that one reads the port as it is imported."""
    if "KNTC_TEST_PG_PORT" in os.environ:
        return
    base = free_block()
    if base is None:
        pytest.exit(f"no free block of ports for the test clusters between {FIRST} and {LAST}: "
                    "set KNTC_TEST_PG_PORT to a free one", returncode=4)
    os.environ["KNTC_TEST_PG_PORT"] = str(base)


_choose_test_port()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests needing no lab before the lab's, each part by folder (see _ORDER; stable, so
    modules stay whole); benchmarks measure, they do not
    assert: they run only when asked for with `-m bench` (the DR-first move with `-m move`)."""
    # Every test that needs no lab first (the lab comes up beside them), then the lab's, each by folder:
    # those that only read the lab first, while site.yml runs on it once more (pytest_runtest_setup).
    items.sort(key=lambda i: (_needs_lab(i), _needs_lab(i) and not _reads_only(i), _rank(i)))
    # The DR-first move needs a lab whose sites run two releases (make dr-first-move): like the
    # benchmarks, it runs only when asked for by its marker.
    asked = config.getoption("markexpr") or ""
    left = [i for i in items if any(i.get_closest_marker(m) and m not in asked for m in ("bench", "move"))]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [i for i in items if i not in left]


def _needs_lab(item: pytest.Item) -> bool:
    return item.get_closest_marker("lab") is not None


def _reads_only(item: pytest.Item) -> bool:
    return item.get_closest_marker("readonly") is not None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A lab test that changes the lab waits for the idempotence run that follows a background bring-up;
    one marked `readonly` needs only the bring-up (the `lab` fixture)."""
    if _needs_lab(item) and not _reads_only(item):
        from tests.infra.conftest import wait_for_second_run

        wait_for_second_run()


def pytest_collection_finish(session: pytest.Session) -> None:
    """With lab tests selected after others, or in a session of lab tests that another session of the
    others runs beside (tests/run.py), start bringing the lab up now (tests/infra/conftest.py)."""
    lab = [i.get_closest_marker("lab") is not None for i in session.items]
    if any(lab) and (not all(lab) or os.environ.get("KNTC_LAB_EARLY") == "beside"):
        from tests.infra.conftest import start_early

        start_early()


def clear_of_a_window_edge(conn: psycopg.Connection[dict[str, Any]], purpose: str, margin_s: float = 10) -> None:
    """Wait past a budget's next window edge if it is less than `margin_s` away. The budget slides: the
    window before counts in proportion to what is left of it, so hits added just before an edge weigh
    less after it, and a call a test expects to be refused may pass."""
    row = conn.execute("SELECT r.window_s - mod(extract(epoch FROM clock_timestamp()), r.window_s)::float8 AS left_s "
                       "FROM kntc.throttle_rule r WHERE r.purpose = %s", (purpose,)).fetchone()
    assert row is not None, f"no budget named {purpose!r}"
    left = row["left_s"]
    if left < margin_s:
        time.sleep(left + 0.5)


def own_address() -> str:
    """An address of the documentation range for one test client: the server trusts X-Real-IP from the
    loopback proxy, so each test's failed logins spend its own budget (kntc.throttle), not the
    budget every other test shares on 127.0.0.1. In the form the server counts it under (no leading
    zeros), so that a test reading the counter finds it."""
    return str(ipaddress.ip_address(f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _test_cluster() -> LocalCluster:
    # One folder per port, so that parallel sessions (xdist, several engineers) never collide.
    port = int(os.environ["KNTC_TEST_PG_PORT"])
    return LocalCluster(root=ROOT / ".data" / f"test-{port}", port=port, database="kntc_test")


@pytest.fixture(scope="session")
def pg_env() -> dict[str, str]:
    """DSNs of a fresh, migrated database `kntc_test` with the unit tree loaded."""
    cluster = _test_cluster()
    env = cluster.ensure()
    cluster.ensure_database("kntc_test", fresh=True)
    full = {**os.environ, **env}
    for cmd in (["migrate"], ["seed-units"]):
        res = subprocess.run([str(BIN / "kntc"), *cmd], env=full, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    env["_superuser_hint"] = str(cluster.socket_dir)
    return env


@pytest.fixture(scope="session")
def cluster(pg_env: dict[str, str]) -> LocalCluster:
    return _test_cluster()


@pytest.fixture(scope="session")
def owner_conn(pg_env: dict[str, str]) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(pg_env["KNTC_ADMIN_DATABASE_URL"], row_factory=dict_row, autocommit=True)
    yield conn
    conn.close()


def stop(proc: subprocess.Popen) -> None:
    """End a process a fixture started: politely, then for certain after 10 s. A process started as
    the leader of its own group (`start_new_session=True`) is ended with its whole group: a server's
    workers must not outlive a main process that was killed before it could stop them."""
    try:
        group = proc.pid if proc.poll() is None and os.getpgid(proc.pid) == proc.pid else None
    except ProcessLookupError:
        group = None

    def signal_all(sig: signal.Signals) -> None:
        with suppress(ProcessLookupError):
            if group is not None:
                os.killpg(group, sig)
            else:
                proc.send_signal(sig)

    signal_all(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    # Whatever of the group is left after the main process (or the main process itself) goes now.
    signal_all(signal.SIGKILL)
    proc.wait(10)


START_TIMEOUT_S = 180


@contextmanager
def running_server(env: dict[str, str], log: Path, workers: int = 2) -> Iterator[str]:
    """The real server (`kntc serve`, granian) on a free loopback port with `env`, its output in `log`;
    yields its URL once /healthz answers, and stops it afterwards."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "kntc"), "serve", "--port", str(port), "--workers", str(workers)],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        # Beside the lab's bring-up (tests/run.py) the machine's two cores run fifteen hosts' provisioning:
        # the workers' imports and a first /healthz can then take tens of seconds.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + log.read_text()[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /healthz within {START_TIMEOUT_S} s: " + log.read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def server(pg_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server (granian, 2 workers) on a free loopback port."""
    with running_server(pg_env, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's package) under Playwright, one for the session: the browser and
    the lab's dashboard tests both use it, since a second Playwright in the same session refuses
    to start while the first one's event loop runs."""
    # A browser test that cannot run must fail loudly: `make test` installs both.
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: KNTC_WITH_BROWSER=1 infra/host/install-deps.sh")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def make_account(owner_conn: psycopg.Connection) -> Callable[..., str]:
    """Create an account (unique username) and return its username; the password is TEST_PASSWORD.

    An account that must hold a second factor gets the rollout's grace period (`factor_due_at`), as
    the accounts that existed before factors did: it logs in with its password alone. The second
    factor's own tests (tests/security/test_accounts_factor.py) make accounts without it."""
    from core_app.security import hash_password

    pw_hash = hash_password(TEST_PASSWORD)

    def make(unit: str, roles: list[str], clearance: int = 0, prefix: str = "t") -> str:
        username = f"{prefix}.{secrets.token_hex(4)}"
        row = owner_conn.execute(
            "INSERT INTO kntc.account (username, full_name, unit_id, roles, clearance, password_hash, factor_due_at) "
            "SELECT %s, %s, id, %s, %s, %s, now() + interval '1 day' FROM kntc.unit WHERE code = %s RETURNING id",
            (username, "Cán bộ " + username, roles, clearance, pw_hash, unit)).fetchone()
        assert row, f"no unit {unit}"
        return username

    return make


class Officer:
    """An httpx client logged in as one officer.

    Recording a petition (`post("/api/cases", json=...)`) runs the duplicate check first and records
    the petition under it, as every intake screen does: the petition is confirmed new. A body that
    names its own `dedup_check_id` is sent as it is; the contract itself (no check, no record) is
    tested through `client.post`."""

    def __init__(self, base: str, username: str, password: str = TEST_PASSWORD) -> None:
        self.username = username
        self.client = httpx.Client(base_url=base, timeout=30)
        r = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        self.account = r.json()["account"]
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, url: str, **kw) -> httpx.Response:
        return self.client.get(url, **kw)

    def post(self, url: str, **kw) -> httpx.Response:
        body = kw.get("json")
        if url == "/api/cases" and isinstance(body, dict) and "dedup_check_id" not in body:
            kw["json"] = {**body, "dedup_check_id": self.check_for(body, headers=kw.get("headers"))}
        return self.client.post(url, **kw)

    def check_for(self, body: dict, headers: dict | None = None) -> str | None:
        """The id of a duplicate check run for this petition body (None if the check refused it)."""
        # A body may be malformed on purpose (the bad-input tests): the check then runs without it.
        given = body.get("parties")
        parties = [{k: p[k] for k in ("full_name", "id_number", "address_unit") if p.get(k)}
                   for p in (given if isinstance(given, list) else []) if isinstance(p, dict)]
        r = self.client.post("/api/dedup/check", json={"parties": parties or [{}], "subject": body.get("subject")},
                             headers=headers)
        return r.json().get("check_id") if r.status_code == 200 else None

    def patch(self, url: str, **kw) -> httpx.Response:
        return self.client.patch(url, **kw)


@pytest.fixture(scope="session")
def officer(server: str, make_account: Callable[..., str]) -> Callable[..., Officer]:
    def login(unit: str, roles: list[str], clearance: int = 0) -> Officer:
        return Officer(server, make_account(unit, roles, clearance))

    return login


def act(o: Any, code: str, action: str, expect: int = 200, **params: Any) -> dict:
    """One workflow action on a case through the API, at the case's current version."""
    version = o.get(f"/api/cases/{code}").json()["version"]
    r = o.post(f"/api/cases/{code}/transitions", json={"action": action, "version": version, **params})
    assert r.status_code == expect, r.text
    return r.json()


def petition_body(**over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "complaint",
        "subject": "Khiếu nại quyết định thu hồi đất",
        "content": "Tôi không đồng ý với mức bồi thường khi thu hồi đất ở.",
        "respondent": "UBND phường",
        "channel": "in_person",
        "parties": [{"role": "complainant", "full_name": "Nguyễn Văn An", "id_number": "001089000123",
                     "address": "Số 1 phố Đội Cấn", "address_unit": "X00004"}],
    }
    body.update(over)
    return body


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # What the drills and rehearsals measured (tests/figures.py).
    from tests.figures import print_figures

    print_figures(terminalreporter)
