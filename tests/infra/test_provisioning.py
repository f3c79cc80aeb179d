"""Provisioning is idempotent, and its checks refuse an inventory they must not provision
(ansible-lint's production profile: tests/unit/test_ansible_lint.py)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .conftest import ALL_HOSTS, ANSIBLE_DIR, VENV_BIN, early_second_run, second_site_run

pytestmark = pytest.mark.lab

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unr>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.M)


@pytest.fixture(scope="module")
def second_run(lab):
    # Made in the background right after this session brought the lab up, beside the tests that
    # need no lab; otherwise now.
    r = early_second_run() or second_site_run()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    return {m["host"]: m.groupdict() for m in RECAP.finditer(r.stdout)}, r.stdout


def test_second_site_run_reaches_every_host(second_run):
    recap, _ = second_run
    assert set(recap) == set(ALL_HOSTS), recap


def test_second_site_run_changes_nothing(second_run):
    recap, out = second_run
    changed = {h: v["changed"] for h, v in recap.items() if v["changed"] != "0"}
    tasks = re.findall(r"^changed: \[(.+?)\].*$", out, re.M)
    assert not changed, f"changed on {changed}; tasks: {tasks[:20]}"


def test_pre_checks_refuse_an_even_etcd_site(lab, tmp_path):
    shutil.copytree(ANSIBLE_DIR / "inventories/lab/group_vars", tmp_path / "group_vars")
    inv = tmp_path / "hosts.yml"
    inv.write_text((ANSIBLE_DIR / "inventories/lab/hosts.yml").read_text().replace(
        "    etcd:\n      hosts:\n", "    etcd:\n      hosts:\n        dc-backup1:\n", 1))
    r = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv),
                        "site.yml", "--tags", "pre_checks"], cwd=ANSIBLE_DIR, capture_output=True, text=True)
    assert r.returncode != 0
    assert "Site 'dc' has 4 etcd members" in r.stdout
