"""The follow guard restarts, through Patroni, a replica that has not streamed from a running leader
for the grace period, once per cooldown, and never a leader, a streaming replica or a replica whose
leader is down (infra/ansible/roles/patroni/files/kntc-follow-guard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

GUARD = Path(__file__).resolve().parents[2] / "infra/ansible/roles/patroni/files/kntc-follow-guard"


class Patroni:
    """A member's REST API answering GET /cluster with the members it is given."""

    def __init__(self) -> None:
        self.members: list[dict] = []
        self.paused = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"members": owner.members, **({"pause": True} if owner.paused else {})}).encode()
                self.send_response(200 if self.path == "/cluster" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def patroni() -> Iterator[Patroni]:
    p = Patroni()
    yield p
    p.server.shutdown()


def members(me_role: str = "replica", leader_state: str = "running") -> list[dict]:
    return [{"name": "dr-db1", "role": "standby_leader", "state": leader_state, "timeline": 3},
            {"name": "dr-db2", "role": me_role, "state": "running", "timeline": 2}]


def guard(tmp_path: Path, url: str, receiver: str, grace: int = 0, cooldown: int = 600) -> str:
    """One run; `receiver` is what the psql query prints: t (streaming), f (not), nothing (a primary)."""
    psql = tmp_path / "psql"
    psql.write_text(f"#!/bin/sh\nprintf '%s' '{receiver}'\n")
    restart = tmp_path / "restart"
    restart.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'restarts.log'}\n")
    for f in (psql, restart):
        f.chmod(0o755)
    (tmp_path / "textfile").mkdir(exist_ok=True)
    env = dict(os.environ, KNTC_FOLLOW_SCOPE="kntc-dr", KNTC_FOLLOW_MEMBER="dr-db2", KNTC_FOLLOW_PATRONI=url,
               KNTC_FOLLOW_GRACE=str(grace), KNTC_FOLLOW_COOLDOWN=str(cooldown),
               KNTC_FOLLOW_STATE=str(tmp_path / "state"), KNTC_FOLLOW_TEXTFILE=str(tmp_path / "textfile"),
               KNTC_FOLLOW_PSQL=str(psql), KNTC_FOLLOW_RESTART=f"{restart} {{scope}} {{member}}")
    return subprocess.run([sys.executable, str(GUARD)], env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout


def restarts(tmp_path: Path) -> list[str]:
    log = tmp_path / "restarts.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_replica_that_does_not_stream_is_restarted_after_the_grace_and_once_per_cooldown(tmp_path, patroni):
    patroni.members = members()
    # Within the grace period: only counted.
    assert guard(tmp_path, patroni.url, "f", grace=3600) == ""
    assert restarts(tmp_path) == []
    prom = (tmp_path / "textfile" / "kntc_follow_guard.prom").read_text()
    assert 'kntc_follow_guard_restarts_total{member="dr-db2"} 0' in prom
    out = guard(tmp_path, patroni.url, "f", grace=0)
    assert "dr-db2 has not streamed from dr-db1" in out and "rewinds" in out
    assert restarts(tmp_path) == ["kntc-dr dr-db2"]
    # Still not streaming: no second restart before the cooldown has passed.
    out = guard(tmp_path, patroni.url, "f", grace=0)
    assert "the next restart after 600 s" in out
    assert restarts(tmp_path) == ["kntc-dr dr-db2"]
    guard(tmp_path, patroni.url, "f", grace=0, cooldown=0)
    assert len(restarts(tmp_path)) == 2
    prom = (tmp_path / "textfile" / "kntc_follow_guard.prom").read_text()
    assert 'kntc_follow_guard_restarts_total{member="dr-db2"} 2' in prom


def test_streaming_again_starts_the_grace_and_the_cooldown_over(tmp_path, patroni):
    patroni.members = members()
    guard(tmp_path, patroni.url, "f", grace=3600)
    guard(tmp_path, patroni.url, "t", grace=3600)
    assert not (tmp_path / "state" / "not-streaming-since").exists()
    prom = (tmp_path / "textfile" / "kntc_follow_guard.prom").read_text()
    assert 'kntc_follow_guard_not_streaming_seconds{member="dr-db2"} 0' in prom
    # A restart that mended it does not hold back the restart of the next fault.
    guard(tmp_path, patroni.url, "f", grace=0)
    guard(tmp_path, patroni.url, "t", grace=0)
    guard(tmp_path, patroni.url, "f", grace=0)
    assert len(restarts(tmp_path)) == 2


@pytest.mark.parametrize(("me_role", "leader_state", "receiver"), [
    ("replica", "running", "t"),          # streams
    ("standby_leader", "running", "f"),   # Patroni rewinds a leader itself
    ("leader", "running", ""),            # a primary
    ("replica", "stopped", "f"),          # nothing to follow: a restart cannot help
])
def test_nothing_is_restarted_that_a_restart_would_not_mend(tmp_path, patroni, me_role, leader_state, receiver):
    patroni.members = members(me_role, leader_state)
    if me_role != "replica":
        patroni.members[0]["role"] = "replica"
    guard(tmp_path, patroni.url, receiver, grace=0)
    assert restarts(tmp_path) == []


def test_a_paused_cluster_is_left_to_the_operator(tmp_path, patroni):
    patroni.members, patroni.paused = members(), True
    guard(tmp_path, patroni.url, "f", grace=0)
    assert restarts(tmp_path) == []


def test_patroni_not_answering_is_said_and_nothing_is_done(tmp_path):
    out = guard(tmp_path, "http://127.0.0.1:9", "f", grace=0)
    assert "Patroni does not answer" in out
    assert restarts(tmp_path) == []


def test_a_grace_that_is_no_number_is_refused_in_one_line(tmp_path, patroni):
    env = dict(os.environ, KNTC_FOLLOW_SCOPE="kntc-dr", KNTC_FOLLOW_MEMBER="dr-db2", KNTC_FOLLOW_PATRONI=patroni.url,
               KNTC_FOLLOW_GRACE="1m", KNTC_FOLLOW_STATE=str(tmp_path / "state"))
    done = subprocess.run([sys.executable, str(GUARD)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == "kntc-follow-guard: KNTC_FOLLOW_GRACE must be a number of seconds, not '1m'"
