"""runbooks/dr-site-failover.md on the lab: the DC is cut off, fenced, the DR promoted, the DC rejoins.

Officers of a Locust load at a fixed rate work through the DR's app host from before the loss: they
are refused while the DR is a standby site and served once it is promoted, which is the time to
service as they see it. `make test` runs one trial; `make dc-loss-trials` runs ten and prints the
median and p95 of each figure (test-output/lab-figures.json).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.drills.conftest import check, run_drill
from tests.infra.conftest import DR_APP, record
from tests.infra.officers import officers_reading

pytestmark = [pytest.mark.lab, pytest.mark.drill]

TRIALS = int(os.environ.get("KNTC_LAB_TRIALS", "1"))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_unplanned_loss_of_the_dc(drill_env, trial):
    with officers_reading(DR_APP, answered_first=False) as officers:
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
    # The officers at the DR: served again after the decision to fence, as they see it.
    to_monotonic = time.time() - time.monotonic()
    fence = figures["fence_at"] - to_monotonic
    served = officers.first_answer_after(fence)
    assert served is not None, f"no officer was served by the DR after the promotion: {officers.by_status()}"
    record("DC loss: writes through the DR's HAProxy, from the cut (s)", figures["site_failover_rto_write_seconds"])
    record("DC loss: writes through the DR's HAProxy, from the decision to fence (s)",
           figures["fence_to_write_seconds"])
    record("DC loss: officers served by the DR, from the decision to fence (s)", served - fence)
    record("DC loss: RPO, commits the DC acknowledged that the DR lacks", figures["site_failover_rpo_lost_commits"],
           unit="commits")
    record("DC loss: RPO span (s)", figures["site_failover_rpo_seconds"])
    print(f"site failover RTO: {figures['site_failover_rto_write_seconds']} s to a write through the DR's HAProxy "
          f"({figures['fence_to_write_seconds']} s from the decision to fence), "
          f"{figures['site_failover_rto_app_seconds']} s to the DR's case service, {served - fence:.2f} s from "
          f"the fence to the first officer served at the DR; RPO {figures['site_failover_rpo_lost_commits']} commits "
          f"({figures['site_failover_rpo_seconds']} s); officers at the DR: {officers.summary()}")
