"""A connected body keeps submitting through the exchange API while the DC's leader host dies.

The body's system is the reference client (`kntc-connect`'s `Connection`): each item under its own
Idempotency-Key, retried with the same key on a refused connection or a 502/503. The DC leader's
container is killed (SIGKILL, the whole host) in the middle of the stream. Every item the client
saw acknowledged must be stored exactly once afterwards: one case per external id, and a replay
of its key answers with the same case code.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
import uuid

import psycopg
import pytest

from connect_client import Connection
from tests.exchange.conftest import self_signed, submission

from .conftest import ADDR, CA, FIGURES, active_alerts, dc_healthy, dc_leader, podman, secret, wait_for

pytestmark = pytest.mark.lab

URL = f"https://{ADDR['dc-app1']}:8443"


def owner_dsn() -> str:
    return (f"host={ADDR['dc-app1']} port=5000 dbname=kntc user=kntc_owner password={secret('pg_kntc_owner')} "
            f"sslmode=verify-ca sslrootcert={CA} connect_timeout=5")


@pytest.fixture(scope="module")
def body(lab, hosts, tmp_path_factory) -> Connection:
    """A court's system registered by the operator's command on the migrating host."""
    name = f"lab-fo-{secrets.token_hex(4)}"
    cert, key = self_signed(tmp_path_factory.mktemp("exchange-body"), name)
    app = hosts("dc-app1")
    remote = app.check_output("mktemp --suffix .crt")
    app.run(f"cat > {remote} <<'PEM'\n{cert.read_text()}PEM")
    reg = app.run(
        "set -a && . /etc/kntc/admin.env && set +a && /opt/kntc/current/bin/kntc exchange clients register "
        f"--name {name} --title 'Hệ thống án (diễn tập chuyển đổi)' --unit T01-TAND --cert {remote} "
        "--scopes read,submit,feed --clearance 0 --rate 6000")
    assert reg.rc == 0, reg.stdout + reg.stderr
    # Retries span about a minute (0.5 s doubling, 7 times): longer than any failover measured here.
    conn = Connection(URL, name, cert, key, ca=CA, retries=7, backoff_s=0.5, timeout=20)
    yield conn
    conn.close()


class Submitter(threading.Thread):
    """Submits one petition after another; remembers what was acknowledged, with its key."""

    def __init__(self, conn: Connection, trial: str):
        super().__init__(daemon=True)
        self.conn, self.trial = conn, trial
        self.acked: dict[str, tuple[str, dict, str, float]] = {}  # external id -> key, body, code, when
        self.refused: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            item, key = submission(f"FO-{self.trial}-{n}"), str(uuid.uuid4())
            try:
                answer = self.conn.submit(item, key=key)
            except Exception as exc:  # whatever the client gave up on is counted, not raised
                self.refused.append((time.monotonic(), type(exc).__name__ + ": " + str(exc)[:200]))
                continue
            self.acked[item["external_id"]] = (key, item, answer["case_code"], time.monotonic())

    def acked_after(self, t: float) -> int:
        return sum(1 for *_, at in self.acked.values() if at > t)


def test_a_dc_failover_during_submissions_loses_no_acknowledged_item(hosts, body):
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the trial")
    victim = dc_leader(hosts)
    trial = secrets.token_hex(3)
    s = Submitter(body, trial)
    s.start()
    wait_for(lambda: len(s.acked) >= 20, 120, "the body's submissions are acknowledged through dc-app1:8443")
    alert_was_active = bool(active_alerts("dc-mon1", "KntcLeaderChanged"))
    t_kill = time.monotonic()
    podman("kill", victim)
    try:
        # Submissions resume on the new leader (the client retries through the failover).
        wait_for(lambda: s.acked_after(t_kill + 1) >= 10, 180, f"submissions acknowledged again after killing {victim}")
    finally:
        s.stop.set()
        s.join(60)
        podman("start", victim)
    times = sorted(at for *_, at in s.acked.values())
    gap = max(b - a for a, b in itertools.pairwise(times))
    FIGURES.setdefault("exchange failover: longest wait between acknowledged submissions", []).append(gap)
    print(f"\nexchange failover: killed {victim}; {len(s.acked)} items acknowledged, "
          f"{len(s.refused)} given up by the client, longest wait between acknowledgements {gap:.2f} s")

    with psycopg.connect(owner_dsn(), autocommit=True) as db:
        stored = dict(db.execute(
            "select x.external_id, count(*) from kntc.exchange_case x join kntc.exchange_client c on c.id = x.client_id "
            "where c.name = %s and x.external_id like %s group by 1", (body.client_id, f"FO-{trial}-%")).fetchall())
    lost = sorted(set(s.acked) - set(stored))
    assert lost == [], f"acknowledged but not stored: {lost[:10]}"
    assert all(n == 1 for n in stored.values())

    if not alert_was_active:  # an earlier failover within 10 minutes is alerted already
        changed = wait_for(lambda: [a for a in active_alerts("dc-mon1", "KntcLeaderChanged")
                                    if a["labels"]["site"] == "dc"], 180, "KntcLeaderChanged for the DC", interval=2)
        assert changed[0]["labels"]["severity"] == "ticket"
        FIGURES.setdefault("fault to alert, DC leader killed -> KntcLeaderChanged (s)", []).append(
            time.monotonic() - t_kill)

    # The client that never heard its answer sends again with the same key: the first answer.
    for ext, (key, item, code, _) in list(s.acked.items())[-5:]:
        again = body.submit(item, key=key)
        assert again["case_code"] == code, ext
    wait_for(lambda: dc_healthy(hosts), 180, f"{victim} rejoins the DC cluster")
