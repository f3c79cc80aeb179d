"""CPU per tier on the lab (loadtests/tiers.py), as a load run against the lab reports it: requests
sent through one app host's nginx show in that host's nginx, case service and PgBouncer, in the
site's HAProxy and in the DC leader's PostgreSQL, read from this machine without touching the hosts.
The hosts' parent control group weighs as several processes of this machine, not as one."""

from __future__ import annotations

import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from loadtests import tiers

from .conftest import ADDR, CA, DC_APP, DC_DB, LAB_MODULE, dc_leader

pytestmark = [pytest.mark.lab, pytest.mark.readonly]


def test_requests_through_nginx_show_in_each_tier_that_served_them(lab, hosts) -> None:
    app = DC_APP[0]
    meter = tiers.lab_meter(address=ADDR[app])
    leader = dc_leader(hosts)
    tls = ssl.create_default_context(cafile=str(CA))

    def healthz(_: int) -> int:
        # /healthz asks the database through the whole path: nginx, the app, PgBouncer, HAProxy.
        with httpx.Client(verify=tls, timeout=10) as client:
            return sum(client.get(f"https://{ADDR[app]}/healthz").status_code == 200 for _ in range(60))

    before = meter()
    with ThreadPoolExecutor(4) as pool:
        served = sum(pool.map(healthz, range(4)))
    after = meter()
    assert served >= 100, f"only {served} of 240 requests were answered 200"

    rows = {(r["site"], r["tier"]): r for r in tiers.per_tier(before, after, 1.0, served)}
    for tier in ("nginx", "app", "PgBouncer"):
        assert app in rows[("dc", tier)]["hosts"], (tier, rows.get(("dc", tier)))
    assert rows[("dc", "HAProxy")]["cpu_s"] > 0
    assert leader in rows[("dc", "PostgreSQL")]["hosts"], rows[("dc", "PostgreSQL")]
    assert set(rows[("dc", "PostgreSQL")]["hosts"]) <= set(DC_DB)
    # The figures per request are what the report sizes from: positive and finite.
    assert 0 < rows[("dc", "app")]["ms_per_request"] < 1000


def test_the_hosts_together_weigh_as_several_processes_of_this_machine(lab) -> None:
    pid = next(p for p in (LAB_MODULE.podman("container", "inspect", "--format", "{{.State.Pid}}", name,
                                              check=False).stdout.strip() for name in DC_DB) if p.isdigit() and p != "0")
    found = LAB_MODULE.cpu_weight_file(Path(f"/proc/{pid}/cgroup").read_text())
    assert found is not None
    path, value = found
    assert path.read_text().strip() == str(value)
