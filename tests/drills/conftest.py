"""Site drills against the two-site lab: each test runs a runbook's `drill` step as written and
reads the drill's JSON report.

The lab comes from tests/infra's `lab` fixture (reused when it already runs and was provisioned).
A failed drill keeps its evidence in .data/dr-reports/<test>_failed/: the reports, the writer's
acknowledgement log and each database host's Patroni journal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr import runbook
from tests.infra.conftest import lab, lab_running  # noqa: F401 - the session fixture and its helper

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"
BIN = Path(sys.executable).parent
REPORTS = ROOT / ".data" / "dr-reports"


@pytest.fixture
def drill_env(lab: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:  # noqa: F811
    out = REPORTS / request.node.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    yield {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
           "KNTC_DR_INVENTORY": str(lab.parent), "COLUMNS": "200", "DRILL_REPORTS": str(out)}


def run_drill(runbook_name: str, env: dict[str, str], timeout: float = 1800,
              step_name: str = "drill") -> tuple[runbook.StepResult, dict[str, Any]]:
    """The runbook's drill step, with its report written to the test's folder; (result, JSON report)."""
    path = RUNBOOKS / runbook_name
    step = runbook.steps(path)[step_name]
    cmd = f"{step.command} --report-dir \"$DRILL_REPORTS\""
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], env=env, cwd=ROOT, text=True, capture_output=True,
                         timeout=timeout)
    result = runbook.StepResult(step, res.returncode, res.stdout, res.stderr)
    reports = sorted(Path(env["DRILL_REPORTS"]).glob("drill-*.json"))
    data = json.loads(reports[-1].read_text()) if reports else {}
    print(res.stdout)  # the drill's Markdown report, shown by pytest -s and kept on failure
    return result, data


def check(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The report's check whose name starts with `prefix`."""
    found = [c for c in data.get("checks", []) if c["name"].startswith(prefix)]
    assert found, f"no check {prefix!r} in the report: {[c['name'] for c in data.get('checks', [])]}"
    return found[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and call.when == "call":
        src = REPORTS / item.name
        dest = REPORTS / f"{item.name}_failed"
        shutil.rmtree(dest, ignore_errors=True)
        if src.exists():
            shutil.copytree(src, dest)
        dest.mkdir(parents=True, exist_ok=True)
        for host in ("dc-db1", "dc-db2", "dc-db3", "dr-db1", "dr-db2"):
            r = subprocess.run([str(BIN / "kntc-dr"), "site", "exec", host,
                                "journalctl -u patroni --since '-30 min' --no-pager | tail -n 400"],
                               capture_output=True, text=True, timeout=120)
            (dest / f"{host}-patroni.log").write_text(r.stdout + r.stderr)
    return report
