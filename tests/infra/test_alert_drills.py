"""Faults made on purpose in the lab, and the alert each must raise in Alertmanager, with the time
from the fault to the alert (printed with the session's figures and kept in test-output/figures.json).
The leader-change alert is proved by the DC failover trials (test_failover.py)."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from .conftest import ADDR, CA, DR_APP, DR_DB, FIGURES, active_alerts, patroni_members, wait_for

pytestmark = pytest.mark.lab


def dr_streams(hosts) -> bool:
    members = patroni_members(hosts(DR_DB[0]))
    return (len(members) == len(DR_DB) and any(m["Role"] == "Standby Leader" for m in members)
            and all(m["State"] in ("running", "streaming") for m in members))


def test_stopping_the_dr_standby_pages_the_on_call_engineer(lab, hosts):
    wait_for(lambda: dr_streams(hosts), 180, "the DR standby cluster streams before the drill")
    assert not active_alerts("dc-mon1", "KntcStandbySiteStopped")
    t0 = time.monotonic()
    for name in DR_DB:
        hosts(name).run("systemctl stop patroni")
    try:
        firing = wait_for(lambda: active_alerts("dc-mon1", "KntcStandbySiteStopped"), 300,
                          "KntcStandbySiteStopped in the DC's Alertmanager", interval=3)
        FIGURES.setdefault("fault to alert, DR standby stopped -> KntcStandbySiteStopped (s)", []).append(
            time.monotonic() - t0)
        assert firing[0]["labels"]["severity"] == "page" and firing[0]["labels"]["site"] == "dr"
        assert firing[0]["annotations"]["runbook_url"].endswith("runbooks/alerts.md#kntcstandbysitestopped")
    finally:
        for name in DR_DB:
            hosts(name).run("systemctl start patroni")
    wait_for(lambda: dr_streams(hosts), 300, "the DR standby cluster streams again")
    # The DR's case service drops the connections its database closed and answers again by itself.
    tls = ssl.create_default_context(cafile=str(CA))
    for app in DR_APP:
        wait_for(lambda app=app: httpx.get(f"https://{ADDR[app]}/healthz", verify=tls, timeout=5).status_code == 200,
                 120, f"{app} answers /healthz again")
    wait_for(lambda: not active_alerts("dc-mon1", "KntcStandbySiteStopped"), 300,
             "KntcStandbySiteStopped resolved", interval=5)
