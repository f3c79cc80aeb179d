"""Failover and switchover in the DC under continuous writes through HAProxy.

A writer commits one row at a time through dc-app1's read-write port (synchronous_commit on,
synchronous_mode in Patroni). The DC leader's container is killed (SIGKILL, the whole host) or a
planned switchover runs; no acknowledged commit may be lost, and the time until writes succeed
again is measured three ways: by the writer (kill to its first acknowledgement after the
outage), in the database as CloudNativePG's end-to-end tests do (the gap between the last row
committed on the old timeline and the first on the new one, from the rows' own commit times), and
as an officer sees it (the longest time in which the officers of a Locust load at a fixed rate got no
answer through nginx: each of their requests goes through PgBouncer to the site's primary). The figures are printed
at the end of the session and written to test-output/lab-figures.json.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import psycopg
import pytest

from .conftest import (
    ADDR,
    CA,
    DC_APP,
    active_alerts,
    dc_healthy,
    dc_leader,
    podman,
    record,
    run_playbook,
    secret,
    wait_for,
)
from .officers import officers_reading

pytestmark = pytest.mark.lab

# `make test` proves the behaviour with one trial; `make failover-trials` runs ten and prints the figures.
TRIALS = int(os.environ.get("KNTC_LAB_TRIALS", "1"))


def dsn() -> str:
    return (f"host={ADDR['dc-app1']} port=5000 dbname=kntc user=kntc_owner password={secret('pg_kntc_owner')} "
            f"sslmode=verify-ca sslrootcert={CA} connect_timeout=1 keepalives_idle=1 keepalives_interval=1 "
            f"keepalives_count=2")


class Writer(threading.Thread):
    """Commits rows (trial, n) one by one; remembers which were acknowledged and when."""

    def __init__(self, trial: str):
        super().__init__(daemon=True)
        self.trial = trial
        self.acked: list[tuple[int, float]] = []
        self.errors: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = None
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if conn is None:
                    conn = psycopg.connect(dsn(), autocommit=True)
                conn.execute("insert into lab_failover_probe (trial, n) values (%s, %s)", (self.trial, n))
                self.acked.append((n, time.monotonic()))
            except psycopg.Error:
                self.errors.append(time.monotonic())
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def first_error_after(self, t: float) -> float | None:
        return next((at for at in self.errors if at > t), None)

    def first_ack_after(self, t: float) -> float | None:
        return next((at for _, at in self.acked if at > t), None)

    def max_gap(self) -> float:
        times = [at for _, at in self.acked]
        return max(b - a for a, b in itertools.pairwise(times))


def commit_gap(trial: str) -> float:
    """The longest time between two consecutive rows of the trial, by their commit times."""
    with psycopg.connect(dsn().replace("connect_timeout=1", "connect_timeout=5"), autocommit=True) as conn:
        row = conn.execute("select max(gap) from (select extract(epoch from at - lag(at) over (order by n)) as gap "
                           "from lab_failover_probe where trial = %s) g", (trial,)).fetchone()
    return float(row[0] or 0.0)


def lost_commits(trial: str, acked: list[tuple[int, float]]) -> list[int]:
    with psycopg.connect(dsn().replace("connect_timeout=1", "connect_timeout=5"), autocommit=True) as conn:
        have = {r[0] for r in conn.execute("select n from lab_failover_probe where trial = %s", (trial,))}
    return [n for n, _ in acked if n not in have]




@pytest.fixture(scope="module")
def probe_table(lab, hosts):
    wait_for(lambda: dc_healthy(hosts), 120, "DC cluster has a leader, a sync standby and 3 running members")
    with psycopg.connect(dsn().replace("connect_timeout=1", "connect_timeout=5"), autocommit=True) as conn:
        conn.execute("create table if not exists lab_failover_probe "
                     "(trial text, n bigint, at timestamptz default now(), primary key (trial, n))")


@pytest.mark.parametrize("trial", range(TRIALS))
def test_failover_when_the_dc_leader_host_is_killed_loses_no_acknowledged_commit(hosts, probe_table, trial):
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the trial")
    victim = dc_leader(hosts)
    name = f"failover-{time.time_ns()}"
    w = Writer(name)
    w.start()
    wait_for(lambda: len(w.acked) > 50, 30, "writer commits through dc-app1:5000")
    # A leader change in the last 10 minutes (an earlier trial) is already alerted: time only a fresh one.
    alert_was_active = bool(active_alerts("dc-mon1", "KntcLeaderChanged"))
    with officers_reading(DC_APP[:1]) as reading:
        t_kill = time.monotonic()
        podman("kill", victim)
        try:
            wait_for(lambda: w.first_error_after(t_kill) and w.first_ack_after(w.first_error_after(t_kill)), 90,
                     f"writes fail, then succeed again after killing {victim}")
            time.sleep(3)  # answers after the writer's: the officer's wait is measured between answers
        finally:
            w.stop.set()
            w.join(10)
            podman("start", victim)
    resumed = w.first_ack_after(w.first_error_after(t_kill)) - t_kill
    gap, app = commit_gap(name), reading.longest_wait_after(t_kill) or float("nan")
    record("failover: writes resumed after leader host killed", resumed)
    record("failover: commit gap in the database (old timeline to new)", gap)
    record("failover: longest wait for the case service through nginx", app)
    print(f"\nfailover trial {trial}: killed {victim}, writes resumed after {resumed:.2f} s (commit gap {gap:.2f} s, "
          f"through nginx {app:.2f} s), {len(w.acked)} acknowledged commits")
    assert lost_commits(name, w.acked) == []
    # The on-call engineer hears of it: the leader change reaches Alertmanager (a ticket).
    changed = alert_was_active or wait_for(lambda: [a for a in active_alerts("dc-mon1", "KntcLeaderChanged") if a["labels"]["site"] == "dc"],
                       180, "KntcLeaderChanged for the DC in Alertmanager", interval=2)
    if not alert_was_active:
        assert changed[0]["labels"]["severity"] == "ticket"
        record("fault to alert, DC leader killed -> KntcLeaderChanged (s)", time.monotonic() - t_kill)
    wait_for(lambda: dc_healthy(hosts), 180, f"{victim} rejoins the DC cluster (pg_rewind)")


@pytest.mark.parametrize("trial", range(TRIALS))
def test_planned_switchover_loses_no_acknowledged_commit(hosts, probe_table, trial):
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the trial")
    before = dc_leader(hosts)
    name = f"switchover-{time.time_ns()}"
    w = Writer(name)
    w.start()
    wait_for(lambda: len(w.acked) > 50, 30, "writer commits through dc-app1:5000")
    try:
        r = run_playbook("switchover.yml", timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
        time.sleep(2)
    finally:
        w.stop.set()
        w.join(10)
    gap = w.max_gap()
    record("switchover: longest write gap", gap)
    after = dc_leader(hosts)
    print(f"\nswitchover trial {trial}: {before} -> {after}, longest write gap {gap:.2f} s, "
          f"{len(w.acked)} acknowledged commits")
    assert after != before
    assert lost_commits(name, w.acked) == []
