"""The database hosts' PostgreSQL major version has one home, `kntc_postgres_version` in
infra/ansible/group_vars/all.yml: a major upgrade changes it per site group, and nothing that runs
against the platform's hosts (roles, playbooks, the lab's image, the site commands, the lab's tests)
names a version of its own."""

from __future__ import annotations

import re

from tests.conftest import ROOT

HOME = ROOT / "infra" / "ansible" / "group_vars" / "all.yml"
NAMED = re.compile(r"postgresql[-/](?:client-)?\d+\b")
PLACES = [
    *(ROOT / "infra" / "ansible").rglob("*.yml"),
    *(ROOT / "infra" / "ansible").rglob("*.j2"),
    *(ROOT / "infra" / "ansible" / "roles").rglob("README.md"),
    ROOT / "infra" / "lab" / "lab.py",
    *(ROOT / "dr" / "sites").rglob("*.py"),
    *(ROOT / "tests" / "infra").rglob("*.py"),
    *(ROOT / "tests" / "drills").rglob("*.py"),
]


def test_the_version_is_set_once():
    assert re.search(r"^kntc_postgres_version: \d+$", HOME.read_text(), re.MULTILINE)


def test_nothing_else_that_runs_on_the_hosts_names_a_version():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in PLACES if p != HOME and ".state" not in p.parts
             for n, line in enumerate(p.read_text().splitlines(), 1) if NAMED.search(line)]
    assert not found, "\n".join(found)
