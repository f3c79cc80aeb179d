"""The drills' Locust load against the real local app: officers work at the rate asked, every answer
is kept, an outage shows as failed requests and as the longest wait an officer saw, and the load
recovers by itself when the app comes back (a session still valid, or a new login)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from loadtests.drill_load import LoadError, fixed_rate
from tests.conftest import BIN, TEST_PASSWORD, free_port, stop

RATE = 10.0


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "kntc"), "serve", "--port", str(port), "--workers", "1"],
                                env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(proc)
    raise AssertionError("server did not start: " + log.read_text()[-2000:])


def test_officers_work_at_the_fixed_rate_and_an_outage_shows_as_failures_and_a_wait(
        pg_env: dict[str, str], make_account: Callable[..., str], tmp_path: Path) -> None:
    username = make_account("X00004", ["handling"])
    port = free_port()
    proc = serve(pg_env, port, tmp_path / "server.log")
    try:
        with fixed_rate([f"http://127.0.0.1:{port}"], username=username, password=TEST_PASSWORD,
                        ca=tmp_path / "unused-ca.pem", rate=RATE, users=2, folder=tmp_path / "load") as answers:
            time.sleep(4)
            t_down = time.monotonic()
            stop(proc)
            time.sleep(2)
            proc = serve(pg_env, port, tmp_path / "server.log")
            t_up = time.monotonic()
            time.sleep(3)
    finally:
        stop(proc)
    before = [a for at, a in zip(answers.started, answers.answers, strict=True) if at < t_down - 0.5]
    after = [a for at, a in zip(answers.started, answers.answers, strict=True) if at > t_up + 0.5]
    assert before and all(status == 200 for status, _ in before), answers.by_status()
    # the rate asked, not what a closed loop would make of a fast app (2 s of slack for the start)
    assert RATE * 2 <= len(before) <= RATE * (t_down - answers.started[0] + 2), len(before)
    assert {"/api/cases", "/api/cases/[code]", "/api/search"} >= set(answers.names) - {"/api/auth/login"}
    assert answers.failed and {status for status, _ in answers.failed} == {0}, answers.by_status()
    assert after and all(status == 200 for status, _ in after), "the load did not recover by itself"
    wait = answers.longest_wait_after(t_down)
    assert wait is not None and 2 <= wait < 30, wait
    assert (tmp_path / "load" / "answers.json").exists() and (tmp_path / "load" / "locust-0_stats.csv").exists()


def test_a_load_that_gets_no_answer_says_which_target_and_why(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(LoadError, match=rf"127.0.0.1:{port}.*Connection refused"), \
            fixed_rate([f"http://127.0.0.1:{port}"], username="nobody", password="x", ca=tmp_path / "ca.pem",
                       rate=4, users=1, folder=tmp_path / "load", start_timeout=5):
        pass
