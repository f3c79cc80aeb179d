"""runbooks/dr-pitr.md, executed: a mistaken DELETE undone by hand, and the PITR drill."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.dr.conftest import PITR_MD, RunStep

pytestmark = pytest.mark.drill


def _parties(env: dict[str, str]) -> int:
    res = subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/psql", "-X", "-At", "-h",
                          env["SOURCE_SOCKET"], "-p", env["SOURCE_PORT"], "-d", "kntc", "-c",
                          "SELECT count(*) FROM kntc.party"], capture_output=True, text=True, check=True)
    return int(res.stdout)


def test_deleted_rows_are_put_back_from_a_copy_restored_to_a_restore_point(
        run_step: RunStep, dr_env: dict[str, str], scratch_dir: str) -> None:
    before = _parties(dr_env)
    assert before > 0
    run_step(PITR_MD, "restore-point")
    run_step(PITR_MD, "mistake")
    assert _parties(dr_env) == 0
    run_step(PITR_MD, "restore-to-point", SCRATCH=scratch_dir)
    for step in ("stage-table", "stage-copy"):
        run_step(PITR_MD, step, SCRATCH=scratch_dir)
    review = run_step(PITR_MD, "stage-review", SCRATCH=scratch_dir)
    assert review.stdout.strip() == f"staged={before} missing={before}"
    run_step(PITR_MD, "put-back", SCRATCH=scratch_dir)
    run_step(PITR_MD, "stop-scratch", SCRATCH=scratch_dir)
    assert _parties(dr_env) == before


def test_pitr_drill_loses_no_commit_acknowledged_before_the_mistake(run_step: RunStep, dr_env: dict[str, str]) -> None:
    run_step(PITR_MD, "drill")
    reports = sorted(Path(dr_env["DRILL_DIR"], "state", "reports").glob("drill-pitr-*.json"))
    report = json.loads(reports[-1].read_text())
    f = report["figures"]
    assert report["passed"]
    assert f["rpo_lost_commits_before_mistake"] == 0 and f["commits_before_mistake"] > 0
    assert f["commits_after_mistake_discarded"] > 0  # the writer kept going: PITR must cut them off
    print("\nPITR drill figures:", json.dumps(f, indent=1))
