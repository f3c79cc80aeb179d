"""A rolling minor upgrade of PostgreSQL and Patroni in the DC (upgrade_postgres.yml) while officers
read through nginx and a writer commits through HAProxy: every member restarts on its new binaries,
the leadership moves once, no acknowledged commit is lost and no officer's request fails.

The lab's image already carries the newest packages of its Debian release, so the run restarts
every member anyway (patroni_upgrade_restart_always): the procedure and its cost are what is
rehearsed; a real minor release changes only the packages apt installs in the same steps."""

from __future__ import annotations

import time

import pytest

from .conftest import DC_DB, dc_healthy, dc_leader, record, run_playbook, wait_for
from .officers import officers_reading
from .test_failover import Writer, lost_commits, probe_table  # noqa: F401 - probe_table is a fixture

pytestmark = pytest.mark.lab


def started_at(hosts, member: str) -> str:
    return hosts(member).check_output(
        "runuser -u postgres -- psql -X -At -h /var/run/postgresql -c 'SELECT pg_postmaster_start_time()'")


@pytest.mark.usefixtures("probe_table")
def test_a_rolling_minor_upgrade_restarts_every_member_under_load_without_an_error(hosts):
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the upgrade")
    leader = dc_leader(hosts)
    before = {m: started_at(hosts, m) for m in DC_DB}
    name = f"upgrade-{time.time_ns()}"
    w = Writer(name)
    w.start()
    wait_for(lambda: len(w.acked) > 50, 30, "writer commits through dc-app1:5000")
    started = time.monotonic()
    try:
        with officers_reading() as reading:
            r = run_playbook("upgrade_postgres.yml", "-e", "patroni_upgrade_restart_always=true", timeout=900)
            assert r.returncode == 0, r.stdout[-3000:]
            took = time.monotonic() - started
            time.sleep(2)
    finally:
        w.stop.set()
        w.join(10)
    gap = w.max_gap()
    record("rolling minor upgrade: longest write gap (s)", gap)
    record("rolling minor upgrade: slowest officer request (s)", reading.slowest)
    print(f"\nrolling minor upgrade of {len(DC_DB)} members in {took:.0f} s: leader {leader} -> {dc_leader(hosts)}, "
          f"longest write gap {gap:.2f} s, writer errors {len(w.errors)}, officers: {reading.summary()}")
    after = {m: started_at(hosts, m) for m in DC_DB}
    assert all(after[m] != before[m] for m in DC_DB), "a member was not restarted"
    assert dc_leader(hosts) != leader
    assert lost_commits(name, w.acked) == []
    assert not reading.failed, f"{len(reading.failed)} of {len(reading.answers)} requests failed: {reading.failed[:5]}"
    wait_for(lambda: dc_healthy(hosts), 120, "DC cluster healthy after the upgrade")
