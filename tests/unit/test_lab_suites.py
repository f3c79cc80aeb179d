"""The lab's Debian release per site (`KNTC_LAB_SUITE`): the default lab is this machine's Debian 12
with the inventory's PostgreSQL, `trixie` puts both sites on Debian 13 and its 17, a pair per site
gives the site-by-site move's shape, and anything else is refused in one line before a host is made."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from tests.conftest import ROOT

_SPEC = importlib.util.spec_from_file_location("kntc_lab_suites", ROOT / "infra" / "lab" / "lab.py")
assert _SPEC and _SPEC.loader
lab = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("kntc_lab_suites", lab)
_SPEC.loader.exec_module(lab)

INVENTORY_VERSION = int(re.search(r"^kntc_postgres_version: (\d+)$",
                                  (ROOT / "infra/ansible/group_vars/all.yml").read_text(), re.MULTILINE)[1])


def test_without_a_choice_both_sites_run_this_machines_debian_and_the_inventorys_postgres():
    assert lab.site_suites("") == {"dc": "bookworm", "dr": "bookworm"}
    assert lab.SUITE_POSTGRES["bookworm"] == INVENTORY_VERSION


def test_one_suite_names_both_sites_and_debian_13_carries_postgres_17():
    assert lab.site_suites("trixie") == {"dc": "trixie", "dr": "trixie"}
    assert lab.SUITE_POSTGRES["trixie"] == 17


def test_a_pair_per_site_gives_the_dr_first_move():
    assert lab.site_suites("dc=bookworm,dr=trixie") == {"dc": "bookworm", "dr": "trixie"}
    assert lab.site_suites("dr=trixie") == {"dc": "bookworm", "dr": "trixie"}


def test_each_suite_has_its_own_image_with_its_own_postgres():
    old, new = lab.image_name("bookworm"), lab.image_name("trixie")
    assert old.startswith("localhost/kntc-lab:bookworm-") and new.startswith("localhost/kntc-lab:trixie-")
    assert f"postgresql-{INVENTORY_VERSION}" in lab.image_packages("bookworm")
    assert "postgresql-17" in lab.image_packages("trixie")
    assert f"postgresql-{INVENTORY_VERSION}" not in lab.image_packages("trixie")


@pytest.mark.parametrize("spec", ["sid", "dc=trixie,dx=trixie", "dc=buster", "dc="])
def test_an_unknown_suite_or_site_is_refused_in_one_line(spec):
    with pytest.raises(SystemExit) as exc:
        lab.site_suites(spec)
    message = str(exc.value)
    assert message.startswith("lab: KNTC_LAB_SUITE=") and "\n" not in message


def test_an_images_apt_sources_are_this_hosts_mirrors_with_the_images_suite(tmp_path):
    src = tmp_path / "debian.sources"
    src.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                   "Components: main\n")
    text = lab.sources_for(src, "trixie")
    assert "Suites: trixie trixie-updates\n" in text and "URIs: http://mirror.example/debian\n" in text
    assert lab.sources_for(src, "bookworm") == src.read_text()


def test_the_same_version_on_both_sites_keeps_the_dr_a_standby_of_the_dc():
    for spec in ("", "trixie"):
        extra = lab.site_host_vars(lab.site_suites(spec))
        assert all("patroni_is_standby_cluster" not in v and "patroni_pg_hba_extra" not in v
                   and "patroni_postgresql_parameters_extra" not in v and "pgbackrest_remote_repo_enabled" not in v
                   for v in extra.values())
    assert lab.site_host_vars(lab.site_suites("trixie"))["dr"] == {"kntc_postgres_version": 17}


def test_a_dr_on_a_newer_postgres_is_a_cluster_of_its_own_ready_for_the_move():
    extra = lab.site_host_vars(lab.site_suites("dc=bookworm,dr=trixie"))
    dr, dc = extra["dr"], extra["dc"]
    assert dr["kntc_postgres_version"] == 17 and dr["patroni_is_standby_cluster"] is False
    assert "kntc_postgres_version" not in dc and "patroni_is_standby_cluster" not in dc
    # the DC publishes for the copy, the DR for the way back after the cut-over
    assert dc["patroni_postgresql_parameters_extra"] == dr["patroni_postgresql_parameters_extra"] == {
        "wal_level": "logical"}
    # two pgBackRest versions do not talk to each other: each site keeps to its own repository
    assert dc["pgbackrest_remote_repo_enabled"] is False and dr["pgbackrest_remote_repo_enabled"] is False
    balancers = {site: {a for s, a, t in lab.HOSTS.values() if s == site and "balancer" in t} for site in ("dc", "dr")}
    backups = {a for s, a, t in lab.HOSTS.values() if s == "dr" and "backup" in t}
    # the subscriber on each side arrives through the other side's own balancers, nowhere else
    assert {line.split()[3].removesuffix("/32") for line in dr["patroni_pg_hba_extra"]} == balancers["dr"]
    assert all(line.startswith("hostssl kntc kntc_upgrade ") for line in dr["patroni_pg_hba_extra"])
    upgrade = [line for line in dc["patroni_pg_hba_extra"] if " kntc_upgrade " in line]
    superuser = [line for line in dc["patroni_pg_hba_extra"] if " postgres " in line]
    assert {line.split()[3].removesuffix("/32") for line in upgrade} == balancers["dc"]
    # the DC's superuser only into the case database and only from the DR's backup host
    assert {line.split()[3].removesuffix("/32") for line in superuser} == backups
    assert all(line.startswith("hostssl kntc postgres ") and line.endswith(" scram-sha-256") for line in superuser)


def test_a_remade_site_is_provisioned_alone_as_the_running_sites_standby_without_crossing_repositories():
    """`lab.py remake dc` gives provision_site.yml real JSON values: a string "false" would be true
    in Ansible's `when:`, and the remade site would reach for a repository the running one lacks."""
    import json

    given = json.loads(lab.remake_extra_vars("dc", "dr"))
    assert given == {"provision_site": "dc", "kntc_primary_site": "dr", "pgbackrest_remote_repo_enabled": False}
    book = (ROOT / "infra/ansible/provision_site.yml").read_text()
    for name in ("provision_site", "kntc_primary_site"):
        assert f"{name} | default(" in book  # the playbook's own selectors, not a variable it ignores
    # and the runbook's step gives the same values
    from dr import runbook
    step = runbook.steps(ROOT / "runbooks" / "upgrade-postgres.md")["rebuild-old"]
    assert json.loads(step.command.split("-e '", 1)[1].rstrip("'")) == given


def test_remaking_a_site_is_refused_in_one_line_while_the_site_it_follows_does_not_run():
    running = {name: "running" for name in lab.HOSTS}
    assert lab.remake_refusal("dc", running) is None
    # the DC's own hosts may be in any state: they are the ones made anew
    assert lab.remake_refusal("dc", {**running, "dc-db1": None, "dc-app1": "exited"}) is None
    refusal = lab.remake_refusal("dc", {**running, "dr-db2": "exited"})
    assert refusal and "dr-db2 is not" in refusal and "\n" not in refusal
    assert "dr-db1, dr-db2" in (lab.remake_refusal("dc", {}) or "")
