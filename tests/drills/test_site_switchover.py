"""runbooks/dr-site-switchover.md on the lab: DC → DR and back, nothing lost, never two primaries."""

from __future__ import annotations

import pytest

from tests.drills.conftest import check, run_drill

pytestmark = [pytest.mark.lab, pytest.mark.drill]


def test_planned_site_switchover_and_switchback(drill_env):
    res, report = run_drill("dr-site-switchover.md", drill_env)
    assert res.ok, res.explain()
    assert report["passed"], report["reasons"]
    # inside and across the sites the planned move waits for the DR to replay the DC's last WAL
    lost = check(report, "không mất commit đã xác nhận")
    assert lost["ok"], lost["detail"]
    assert report["figures"]["rpo_lost_commits"] == 0
    assert check(report, "không bao giờ có hai primary")["ok"]
    assert check(report, "dr phục vụ ghi")["ok"]
    for step in ("demote-dc", "caught-up-dr", "promote-dr", "apps-to-dr", "dc-follows-dr",
                 "demote-dr", "caught-up-dc", "promote-dc", "apps-to-dc", "dr-follows-dc"):
        assert check(report, f"dr-site-switchover.md {step}")["ok"]
    figures = report["figures"]
    print(f"switchover RTO (write through the DR's HAProxy): {figures['switchover_rto_write_seconds']} s; "
          f"to the DR's case service: {figures['switchover_rto_app_seconds']} s; switchback "
          f"{figures['switchback_rto_write_seconds']} s; {figures['writer_commits']} commits")
