"""The alert rules as Prometheus loads them: valid, each one fired and silenced by a unit test
(promtool test rules), each linked to a runbook section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra/ansible/roles/monitoring/files/rules"
PROMTOOL = ROOT / ".tools/promtool"


def alerts() -> list[dict]:
    doc = yaml.safe_load((RULES / "kntc.rules.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def promtool() -> Path:
    if not PROMTOOL.exists():
        pytest.fail("promtool is missing: run infra/host/install-deps.sh (make deps)")
    return PROMTOOL


def test_the_rules_load(promtool: Path) -> None:
    r = subprocess.run([str(promtool), "check", "rules", str(RULES / "kntc.rules.yml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("test_file", sorted(p.name for p in (RULES / "tests").glob("*.test.yml")))
def test_each_alert_fires_on_its_fault_and_not_without_it(promtool: Path, test_file: str) -> None:
    r = subprocess.run([str(promtool), "test", "rules", test_file], cwd=RULES / "tests",
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def test_every_alert_has_a_test_that_fires_it() -> None:
    # A test's expected alerts are matched exactly, so a firing case also shows the alert silent
    # for every other series of its input (the healthy member, the steady disk, the other site).
    fired = set()
    for path in (RULES / "tests").glob("*.test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            fired |= {c["alertname"] for c in test.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert {a["alert"] for a in alerts()} - fired == set(), "alerts never shown firing"


def test_every_alert_names_its_severity_and_a_runbook_section_that_exists() -> None:
    for a in alerts():
        assert a["labels"]["severity"] in {"page", "ticket"}, a["alert"]
        url = a["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        runbook = ROOT / path
        assert runbook.exists(), f"{a['alert']}: {path} does not exist"
        headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", runbook.read_text(), flags=re.M)}
        assert anchor in headings, f"{a['alert']}: no section #{anchor} in {path}"
