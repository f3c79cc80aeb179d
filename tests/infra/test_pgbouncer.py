"""PgBouncer on the lab's app hosts (role pgbouncer): the case service reaches PostgreSQL only
through it, in transaction mode over verified TLS; its figures reach both Prometheus; and a planned
switchover, which pauses it, is a short wait for the officers and not an error.

Threat rows (runbooks/security.md): T103, T104, T110.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from loadtests import statements

from .conftest import ADDR, DC_APP, dc_healthy, dc_leader, query, record, run_playbook, secret, wait_for
from .officers import DEMO_OFFICER, officers_reading

pytestmark = pytest.mark.lab


def console(host, command: str) -> list[list[str]]:
    out = host.check_output(f"runuser -u postgres -- psql -X -At -F '|' -h /var/run/postgresql -p 6432 -U postgres "
                            f"-d pgbouncer -c '{command}'")
    return [line.split("|") for line in out.splitlines() if line]


@pytest.mark.parametrize("app", DC_APP)
def test_the_case_service_reaches_postgresql_only_through_pgbouncer(lab, hosts, app):
    host = hosts(app)
    env = host.file("/etc/kntc/app.env").content_string
    assert 'KNTC_DATABASE_POOLER="pgbouncer"' in env and "@127.0.0.1:6432/kntc" in env
    assert ":5000/" not in env, "the case service still has a DSN straight to HAProxy"
    config = {row[0]: row[1] for row in console(host, "SHOW CONFIG")}
    assert config["pool_mode"] == "transaction" and config["listen_addr"] == "127.0.0.1"
    assert "kntc" in {row[0] for row in console(host, "SHOW DATABASES")}
    # Its server connections are TLS, verified against the PostgreSQL CA and the site's name.
    ini = host.file("/etc/pgbouncer/pgbouncer.ini").content_string
    assert "server_tls_sslmode = verify-full" in ini and "host=postgres.dc.kntc.internal port=5000" in ini
    assert host.socket("tcp://127.0.0.1:6432").is_listening
    assert not host.socket(f"tcp://{ADDR[app]}:6432").is_listening
    # The console is the postgres user's, over the socket: no one logs in to it over TCP.
    refused = host.run("PGPASSWORD= psql -X -h 127.0.0.1 -p 6432 -U postgres -d pgbouncer -c 'SHOW POOLS'")
    assert refused.rc != 0 and "SHOW POOLS" not in refused.stdout


def test_pgbouncers_figures_reach_both_sites_prometheus(lab):
    for monitor in ("dc-mon1", "dr-mon1"):
        up = wait_for(lambda m=monitor: [r for r in query(m, "pgbouncer_up == 1")] or None,
                      90, f"{monitor} reads every app host's PgBouncer figures")
        assert {r["metric"]["instance"] for r in up} >= {*DC_APP, "dr-app1"}
        servers = query(monitor, 'sum by (instance) (pgbouncer_servers{database="kntc"})')
        assert {r["metric"]["instance"] for r in servers} >= set(DC_APP)


def test_a_planned_switchover_is_a_short_wait_for_the_officers_not_an_error(lab, hosts):
    """Officers keep reading their inbox through nginx while switchover.yml pauses PgBouncer, switches
    the leader and resumes: every request is answered, the slowest one is the pause."""
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy before the switchover")
    before = dc_leader(hosts)
    with officers_reading() as reading:
        r = run_playbook("switchover.yml", timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
        for step in ("Pause PgBouncer", "Resume PgBouncer"):
            assert re.search(rf"TASK \[{step}[^\n]*\n(changed: \[dc-app\d\]\n){{2}}", r.stdout), step
        time.sleep(2)
    after = dc_leader(hosts)
    record("switchover through PgBouncer: slowest request (s)", reading.slowest)
    print(f"\nswitchover {before} -> {after} through PgBouncer: {reading.summary()}")
    assert after != before
    assert not reading.failed, f"{len(reading.failed)} of {len(reading.answers)} requests failed: {reading.failed[:5]}"


def test_the_leaders_costliest_statements_are_the_case_services_and_carry_no_secret(lab, hosts):
    """What `loadtests.statements` reads on the DC leader after officers worked (the load report's
    "costliest statements"): the case service's own statements, with their calls and times, and
    nothing an officer sent or held: no username, password or session token in the texts, which a
    capacity tester copies into reports."""
    wait_for(lambda: dc_healthy(hosts), 180, "DC cluster healthy")
    leader = statements.lab_query()
    statements.reset(leader)
    with officers_reading() as reading:
        time.sleep(8)
    assert reading.answers and not reading.failed
    rows = statements.top(leader, 200)
    assert rows and {r["role"] for r in rows} <= set(statements.ROLES), {r["role"] for r in rows}
    assert any("kntc.planned_begin_as_actor" in r["query"] for r in rows), [r["query"][:80] for r in rows]
    assert sum(int(r["calls"]) for r in rows) >= len(reading.answers)
    # Through PgBouncer no statement is prepared: the reset turned planning time on, and it counts.
    assert any(float(r["plan_ms_per_call"]) > 0 for r in rows), rows[:3]
    text = json.dumps(rows, ensure_ascii=False)
    for held in (DEMO_OFFICER, secret("demo_password")):
        assert held not in text
    # A session token or any other long value would be a literal of its own; the app binds them all.
    assert not re.findall(r"'[A-Za-z0-9_\-+/=.]{24,}'", text), re.findall(r"'[^']{24,}'", text)[:3]
