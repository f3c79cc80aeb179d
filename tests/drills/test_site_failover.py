"""runbooks/dr-site-failover.md on the lab: the DC is cut off, fenced, the DR promoted, the DC rejoins."""

from __future__ import annotations

import pytest

from tests.drills.conftest import check, run_drill

pytestmark = [pytest.mark.lab, pytest.mark.drill]


def test_unplanned_loss_of_the_dc(drill_env):
    res, report = run_drill("dr-site-failover.md", drill_env)
    assert res.ok, res.explain()
    assert report["passed"], report["reasons"]
    assert check(report, "không bao giờ có hai primary")["ok"]
    # the fence holds: with the link back, a write to the old DC's rw ports fails
    assert check(report, "dr-site-failover.md fenced-refuses-writes")["ok"]
    # the DR serves writes, and the DC rejoined as its standby site before the switchback
    for step in ("promote-dr", "apps-to-dr", "rejoin-dc", "dc-follows-dr"):
        assert check(report, f"dr-site-failover.md {step}")["ok"]
    # cross-site replication is asynchronous: the RPO is measured, not zero by construction;
    # what the DR accepted after the promotion survives the switchback
    figures = report["figures"]
    assert figures["commits_acknowledged_by_dc"] > 0
    assert figures["site_failover_rpo_lost_commits"] >= 0
    assert check(report, "không mất commit từ khi DR nhận ghi")["ok"]
    print(f"site failover RTO: {figures['site_failover_rto_write_seconds']} s to a write through the DR's HAProxy, "
          f"{figures['site_failover_rto_app_seconds']} s to the DR's case service; RPO "
          f"{figures['site_failover_rpo_lost_commits']} commits ({figures['site_failover_rpo_seconds']} s)")
