"""runbooks/dr-repo-loss.md on the lab: repo1 is lost, repo2 alone restores a checked copy."""

from __future__ import annotations

import pytest

from tests.drills.conftest import check, run_drill

pytestmark = [pytest.mark.lab, pytest.mark.drill]


def test_the_other_sites_repository_still_restores(drill_env):
    res, report = run_drill("dr-repo-loss.md", drill_env)
    assert res.ok, res.explain()
    assert report["passed"], report["reasons"]
    assert check(report, "dr-repo-loss.md repo1-unreadable")["ok"]
    assert check(report, "commit trước điểm khôi phục có trong bản sao")["ok"]
    assert check(report, "dr-repo-loss.md repo1-back")["ok"]
    print(f"restore from repo2: {report['figures']['restore_seconds']} s, recovery and promotion "
          f"{report['figures']['recovery_promote_seconds']} s")
