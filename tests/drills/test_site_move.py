"""runbooks/upgrade-postgres.md, site by site with the DR first, on the lab of two releases
(`make dr-first-move`: the DC on Debian 12 and PostgreSQL 15, the DR on Debian 13 and 17, a cluster of
its own): the DR is filled by logical replication, takes the primary role under a writer, the DC
follows it back, and the role returns with nothing lost."""

from __future__ import annotations

import pytest

from tests.drills.conftest import check, run_drill

pytestmark = [pytest.mark.lab, pytest.mark.drill, pytest.mark.move]


def test_the_dr_on_the_newer_postgres_takes_the_primary_role_and_gives_it_back(drill_env):
    res, report = run_drill("upgrade-postgres.md", drill_env, step_name="move-drill")
    assert res.ok, res.explain()
    assert report["passed"], report["reasons"]
    assert check(report, "site mới chạy phiên bản mới hơn")["ok"]
    for step in ("move-check", "move-prepare", "move-wait", "move-cutover", "move-apps-to-new",
                 "move-rollback", "move-apps-to-old"):
        assert check(report, f"upgrade-postgres.md {step}")["ok"]
    assert check(report, "dc theo dr")["ok"]  # what the DR took was on the DC before the return
    assert check(report, "dr phục vụ ghi")["ok"]
    assert check(report, "không mất commit đã xác nhận")["ok"]
    figures = report["figures"]
    assert figures["rpo_lost_commits"] == 0
    assert figures["postgres_new"] > figures["postgres_old"]
    print(f"PostgreSQL {figures['postgres_old']} -> {figures['postgres_new']}: copy {figures['copy_seconds']} s; "
          f"write gap at the cut-over {figures['cutover_write_gap_seconds']} s, at the return "
          f"{figures['return_write_gap_seconds']} s; {figures['writer_commits']} commits, 0 lost")
