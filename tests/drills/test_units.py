"""The drills' own logic, without the lab: the two-primaries check, RPO, inventories, runbooks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dr import runbook
from dr.drills.monitor import overlaps, primary_intervals
from dr.drills.writer import Ack, rpo
from dr.lab import load_inventory
from dr.sites.state import lsn_int, site_role, standby_cluster_settings

ROOT = Path(__file__).resolve().parents[2]
KNTC_DR = Path(sys.executable).parent / "kntc-dr"


@pytest.mark.parametrize(("samples", "expected"), [
    # a planned move: the old primary stops being one before the new one starts
    ({"dc-db1": [(0, "f"), (1, "f"), (2, "t"), (3, "t")], "dr-db1": [(0, "t"), (2.5, "t"), (3, "f")]}, []),
    # a demoted node that goes down counts as a primary until its first sample says otherwise
    ({"dc-db1": [(0, "f"), (1, "down"), (5, "t")], "dr-db1": [(0, "t"), (0.5, "f"), (4, "f")]},
     [("dc-db1", "dr-db1", 0.5, 1.0)]),
    # a promotion sampled while the fenced site still answers as primary
    ({"dc-db2": [(0, "f"), (10, "f"), (11, "down")], "dr-db1": [(0, "t"), (9, "f"), (12, "f")]},
     [("dc-db2", "dr-db1", 9.0, 11.0)]),
    # touching intervals are a handover, not an overlap
    ({"a": [(0, "f"), (2, "t")], "b": [(0, "t"), (2, "f"), (3, "f")]}, []),
])
def test_two_primaries_are_reported_with_their_nodes_and_time(samples, expected):
    found = [(*v.nodes, v.start, v.end) for v in overlaps(samples)]
    assert found == expected


def test_a_node_that_stays_primary_to_the_end_still_counts():
    assert primary_intervals([(0, "t"), (1, "f"), (2, "f")]) == [(1, 2)]


def test_rpo_counts_acknowledged_commits_missing_and_their_time_span():
    acks = [Ack(i, 100 + i * 0.01, "dc-app1:5000", "dc") for i in range(1, 101)]
    present = set(range(1, 91))
    lost, span, seqs = rpo(acks, present)
    assert lost == 10
    assert seqs == list(range(91, 101))
    assert span == pytest.approx(0.10, abs=1e-6)
    assert rpo(acks, set(range(1, 101)))[:2] == (0, 0.0)


def test_lsn_text_to_number():
    assert lsn_int("0/3000060") == 0x3000060
    assert lsn_int("1/0") == 1 << 32
    assert lsn_int("") == 0


def test_standby_cluster_settings_follow_the_other_sites_balancers():
    inv = load_inventory(ROOT / "infra/ansible/inventories/production")
    settings = standby_cluster_settings(inv, "dr")
    hosts = [b.address for b in inv.balancers("dr")]
    # The port the roles give a standby cluster at provisioning, so a site made standby later
    # follows by the same path.
    roles = ROOT / "infra/ansible/roles"
    port = yaml.safe_load((roles / "haproxy/defaults/main.yml").read_text())["haproxy_replication_port"]
    assert yaml.safe_load((roles / "patroni/defaults/main.yml").read_text())["patroni_standby_port"] == port
    assert settings == [f"standby_cluster.host={','.join(hosts)}", f"standby_cluster.port={port}",
                        "standby_cluster.create_replica_methods=[basebackup]"]


def test_production_inventory_runs_commands_through_sudo():
    inv = load_inventory(ROOT / "infra/ansible/inventories/production")
    h = inv.hosts["dc-db1"]
    assert (h.user, h.become) == ("kntc-admin", True)
    assert h.root("systemctl stop patroni") == "sudo -n bash -c 'systemctl stop patroni'"
    assert {x.site for x in inv.db("dr")} == {"dr"}


def test_an_inventory_without_a_site_is_refused(tmp_path):
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    dc:\n      hosts:\n        a:\n"
                                        "    database:\n      hosts:\n        a:\n")
    with pytest.raises(Exception, match="no database host in site 'dr'"):
        load_inventory(tmp_path)



def test_the_sites_are_the_inventorys_own(tmp_path):
    """kntc_sites (group_vars) is the one list of sites the drills and site commands act on."""
    inv = load_inventory(ROOT / "infra/ansible/inventories/production")
    assert inv.sites == ("dc", "dr") and inv.other("dc") == "dr"
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("kntc_sites: [hn, hcm]\nkntc_primary_site: hn\n")
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    hn:\n      hosts:\n        a:\n    hcm:\n      hosts:\n"
                                        "        b:\n    database:\n      hosts:\n        a:\n        b:\n")
    named = load_inventory(tmp_path)
    assert named.sites == ("hn", "hcm") and named.other("hn") == "hcm"
    assert {h.name: h.site for h in named.hosts.values()} == {"a": "hn", "b": "hcm"}
    (tmp_path / "group_vars" / "all.yml").write_text("kntc_sites: [hn, hcm, dn]\n")
    with pytest.raises(Exception, match="must name two sites"):
        load_inventory(tmp_path)

DRILL_STEPS = {
    "dr-site-switchover.md": {"status-before", "demote-dc", "caught-up-dr", "promote-dr", "apps-to-dr",
                              "dc-follows-dr", "demote-dr", "caught-up-dc", "promote-dc", "apps-to-dc",
                              "dr-follows-dc", "status-after", "drill"},
    "dr-site-failover.md": {"status-before", "cut", "dr-lost", "fence-dc", "promote-dr", "apps-to-dr", "stanza-dr",
                            "heal", "fenced-refuses-writes", "rejoin-dc", "dc-follows-dr", "status-after", "drill"},
    "dr-repo-loss.md": {"backups-in-both", "backup-repo2", "restore-point", "lose-repo1", "repo1-unreadable",
                        "restore-from-repo2", "verify-copy", "cleanup-copy", "repo1-back", "drill"},
    # the major upgrade's own steps (tests/dr/test_major_upgrade.py) and the site move's
    "upgrade-postgres.md": {"upgrade-check", "upgrade-prepare", "upgrade-wait", "upgrade-abandon", "upgrade-reset",
                            "upgrade-cutover", "upgrade-rollback", "upgrade-finish", "move-status-before",
                            "move-reset", "move-check", "move-prepare", "move-wait", "move-cutover",
                            "move-apps-to-new", "move-rollback", "move-apps-to-old", "move-drill",
                            "move-finish", "move-backup-new", "rebuild-old", "old-follows-new", "move-join-repositories", "move-restart-standby",
                            "move-status-after", "move-keep-drill"},
}


@pytest.mark.parametrize("name", sorted(DRILL_STEPS))
def test_the_drills_runbooks_back_up_and_restore_only_through_kntc_dr(name):
    """One backup stack: a step may stop pgBackRest's server or move its folder (the lab's loss of a
    repository), but never runs pgBackRest's commands itself."""
    not_a_command = re.compile(r"pgbackrest-server|/var/lib/pgbackrest[\w.-]*|pgbackrest_\w+")  # an Ansible variable
    for step_id, step in runbook.steps(ROOT / "runbooks" / name).items():
        assert "pgbackrest" not in not_a_command.sub("", step.command), f"{name} {step_id}: {step.command}"


@pytest.mark.parametrize("name", sorted(DRILL_STEPS))
def test_each_runbook_has_every_step_its_drill_runs(name):
    assert set(runbook.steps(ROOT / "runbooks" / name)) == DRILL_STEPS[name]


@pytest.mark.parametrize("name", sorted(DRILL_STEPS))
def test_the_drill_modules_run_only_steps_that_exist(name):
    """Every step id the drill code names is a step of the runbook it runs."""
    src = "\n".join(p.read_text() for p in (ROOT / "dr" / "drills").glob("*.py"))
    named = set(re.findall(r'runner\.run\((?:RUNBOOK|SWITCHOVER), f?"([\w{}-]+)"', src))
    concrete = {n for n in named if "{" not in n}
    every = set().union(*DRILL_STEPS.values())
    assert concrete <= every


def test_site_commands_fail_in_one_line_with_an_exit_code():
    r = subprocess.run([str(KNTC_DR), "site", "--inventory", "/nonexistent", "status"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "no inventory at /nonexistent" in r.stderr
    r = subprocess.run([str(KNTC_DR), "site", "demote", "xx", "--follow", "dr"], capture_output=True, text=True)
    assert r.returncode == 1 and "unknown site 'xx'" in r.stderr and "Traceback" not in r.stderr


class Members:
    """A lab whose `patronictl list` says `rows` of every site."""

    def __init__(self, *rows: tuple[str, str]) -> None:
        self.rows = [{"Member": f"db{i}", "Role": role, "State": st} for i, (role, st) in enumerate(rows, 1)]

    def patroni_members(self, site: str) -> list[dict[str, str]]:
        return self.rows


@pytest.mark.parametrize(("rows", "role"), [
    ((("Leader", "running"), ("Sync Standby", "streaming")), "primary"),
    ((("Standby Leader", "running"), ("Replica", "streaming")), "standby"),        # Patroni 3 (Debian 12)
    ((("Standby Leader", "streaming"), ("Replica", "streaming")), "standby"),      # Patroni 4 (Debian 13)
    ((("Standby Leader", "stopped"), ("Replica", "streaming")), "none"),
    ((("Replica", "streaming"), ("Replica", "streaming")), "none"),
])
def test_a_sites_role_reads_patroni_3_and_4_alike(rows, role):
    assert site_role(Members(*rows), "dr") == role
