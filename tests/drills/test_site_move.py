"""runbooks/upgrade-postgres.md, site by site with the DR first, on the lab of two releases
(`make dr-first-move`: the DC on Debian 12 and PostgreSQL 15, the DR on Debian 13 and 17, a cluster of
its own): the DR is filled by logical replication, takes the primary role under a writer, the DC
follows it back, and the role returns with nothing lost. Then the move kept: the DC's hosts made anew on
Debian 13, the DR's standby, and the primary role home."""

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


def test_the_dc_rebuilt_on_the_newer_release_follows_the_dr_and_takes_the_primary_role_home(drill_env):
    """The second half, after the first test gave the role back: the DR kept, the DC's hosts made anew
    on the DR's release and provisioned as its standby, the switchover home, the repositories joined.
    The lab ends on the newer release at both sites."""
    res, report = run_drill("upgrade-postgres.md", drill_env, step_name="move-keep-drill", timeout=5400)
    assert res.ok, res.explain()
    assert report["passed"], report["reasons"]
    for step in ("move-cutover", "move-finish", "move-backup-new", "rebuild-old", "old-follows-new", "move-join-repositories",
                 "move-restart-standby", "move-status-after"):
        assert check(report, f"upgrade-postgres.md {step}")["ok"]
    for step in ("demote-dr", "caught-up-dc", "promote-dc", "apps-to-dc", "dr-follows-dc"):
        assert check(report, f"dr-site-switchover.md {step}")["ok"]
    assert check(report, "dc chạy phiên bản của dr")["ok"]
    assert check(report, "dr phục vụ ghi khi dc dựng lại")["ok"]
    assert check(report, "không mất commit đã xác nhận")["ok"]
    figures = report["figures"]
    assert figures["rpo_lost_commits"] == 0
    assert figures["postgres_dc_after"] == figures["postgres_new"] > figures["postgres_old"]
    print(f"DC rebuilt on PostgreSQL {figures['postgres_dc_after']}: hosts {figures['hosts_made_seconds']} s, "
          f"provisioned and following {figures['rebuild_to_following_seconds']} s; write gap at the cut-over "
          f"{figures['cutover_write_gap_seconds']} s, home {figures['home_write_gap_seconds']} s; "
          f"{figures['writer_commits']} commits, 0 lost")
