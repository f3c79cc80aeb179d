"""`kntc-dr site move`: the major upgrade's steps with both clusters named from the inventory. What
each step is given, read as libpq reads it; the password is in none of it.

Threat rows (runbooks/security.md): T114, T115.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from dr.errors import ConfigError
from dr.lab import Host, Inventory
from dr.sites import move


def inventory(tmp_path: Path) -> Inventory:
    def host(name: str, address: str, site: str, *groups: str) -> Host:
        return Host(name, address, site, frozenset({site, *groups}))

    hosts = [host("dc-db1", "10.0.1.11", "dc", "database"), host("dc-db2", "10.0.1.12", "dc", "database"),
             host("dc-app1", "10.0.1.21", "dc", "balancer", "app"),
             host("dc-app2", "10.0.1.22", "dc", "balancer", "app"),
             host("dc-backup1", "10.0.1.31", "dc", "backup"),
             host("dr-db1", "10.0.2.11", "dr", "database"), host("dr-app1", "10.0.2.21", "dr", "balancer", "app"),
             host("dr-backup1", "10.0.2.31", "dr", "backup")]
    return Inventory(tmp_path / "hosts.yml", {h.name: h for h in hosts}, tmp_path, tmp_path / "ca.crt",
                     vars={"kntc_postgres_service_name": "postgres.{{ kntc_site }}.kntc.internal"})


def test_the_steps_run_on_the_new_sites_backup_host_and_find_each_writable_cluster(tmp_path):
    plan = move.plan(inventory(tmp_path), "dc", "dr", "/run/kntc-move.x/pgpass")
    assert plan.runner.name == "dr-backup1"
    source = conninfo_to_dict(plan.env["KNTC_UPGRADE_SOURCE"])
    target = conninfo_to_dict(plan.env["KNTC_UPGRADE_TARGET"])
    assert source["host"] == "10.0.1.11,10.0.1.12" and source["port"] == "5432,5432"
    assert target["host"] == "10.0.2.11" and target["port"] == "5432"
    for c in (source, target):
        assert c["dbname"] == "kntc" and c["user"] == "postgres" and c["passfile"] == "/run/kntc-move.x/pgpass"
        assert c["target_session_attrs"] == "read-write" and c["sslmode"] == "verify-full"
        assert "password" not in c


def test_each_subscriber_reaches_the_other_cluster_through_its_balancers_by_its_certificates_name(tmp_path):
    plan = move.plan(inventory(tmp_path), "dc", "dr", "/p")
    old = conninfo_to_dict(plan.env["KNTC_UPGRADE_SOURCE_FROM_TARGET"])
    assert old["hostaddr"] == "10.0.1.21,10.0.1.22" and old["port"] == "5002,5002"
    assert old["host"] == "postgres.dc.kntc.internal,postgres.dc.kntc.internal"
    new = conninfo_to_dict(plan.env["KNTC_UPGRADE_TARGET_FROM_SOURCE"])
    assert (new["hostaddr"], new["port"], new["host"]) == ("10.0.2.21", "5002", "postgres.dr.kntc.internal")
    assert old["sslmode"] == new["sslmode"] == "verify-full"


def test_a_step_is_one_kntc_dr_upgrade_command_with_no_secret_on_its_line(tmp_path):
    plan = move.plan(inventory(tmp_path), "dc", "dr", "/run/kntc-move.x/pgpass")
    assert move.command(plan, "wait", 1800).endswith("kntc-dr upgrade status --wait --timeout 1800")
    assert move.command(plan, "cutover", 30).endswith("kntc-dr upgrade cutover --timeout 30")
    assert "upgrade prepare --pg-bin $(ls -d /usr/lib/postgresql/*/bin" in move.command(plan, "prepare", 60)
    assert move.command(plan, "reset", 60).endswith("kntc-dr upgrade reset")
    assert "password" not in move.command(plan, "cutover", 30)
    assert move._pgpass_line("a:b\\c") == "*:*:*:postgres:a\\:b\\\\c\n"


@pytest.mark.parametrize(("old", "new", "step"), [("dc", "dc", "check"), ("dc", "xx", "check"),
                                                  ("dc", "dr", "drop")])
def test_a_wrong_site_or_step_is_refused_before_any_host_is_reached(tmp_path, old, new, step):
    with pytest.raises(ConfigError):
        move.command(move.plan(inventory(tmp_path), old, new, "/p"), step, 60)


def test_the_new_primary_is_backed_up_and_the_old_disks_wiped_before_the_old_site_is_rebuilt():
    """While the old site is rebuilt the new one's members are the only copies: its own stanza gets a
    full backup first, in the runbook's order and in the drill's, and the old disks are wiped."""
    import re

    from dr import runbook

    path = Path(__file__).resolve().parents[2] / "runbooks" / "upgrade-postgres.md"
    text = path.read_text()
    steps = runbook.steps(path)
    order = [m.group(1) for m in re.finditer(r"step=([\w-]+)", text)]
    assert order.index("move-finish") < order.index("move-backup-new") < order.index("rebuild-old")
    backup = steps["move-backup-new"].command
    assert "dr:backup" in backup and "/etc/kntc-dr/kntc-dr.toml" in backup and "--type full" in backup
    between = text[text.index("step=move-backup-new"):text.index("step=rebuild-old")]
    assert "Wipe them" in between and "state secrets" in between
    drill = (Path(__file__).resolve().parents[2] / "dr" / "drills" / "site_move.py").read_text()
    keep = drill[drill.index("def run_site_move_keep"):]
    assert keep.index('"move-backup-new"') < keep.index("remake_lab_site(")
