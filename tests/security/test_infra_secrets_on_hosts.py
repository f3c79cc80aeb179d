"""Where the owner password lives, and the audit chain's anchors on the backup hosts.

Threat rows (runbooks/security.md): T37, T45.
"""

from __future__ import annotations

import pytest

from .lab_helpers import secret

pytestmark = pytest.mark.lab

ANCHOR_HOSTS = ["dc-backup1", "dr-backup1"]


@pytest.mark.parametrize("app", ["dc-app2", "dr-app1"])
def test_a_compromised_app_host_other_than_the_migrating_one_holds_no_owner_password(hosts, app):
    host = hosts(app)
    assert not host.file("/etc/kntc/admin.env").exists
    r = host.run(f"grep -rlF -- {secret('pg_kntc_owner')} /etc /opt/kntc /var/lib /root 2>/dev/null")
    assert r.stdout.strip() == "", f"the owner password is on {app}: {r.stdout}"


def test_the_migrating_host_keeps_the_owner_password_for_root_only(hosts):
    f = hosts("dc-app1").file("/etc/kntc/admin.env")
    assert f.exists and f.user == "root" and f.mode == 0o600


@pytest.mark.parametrize("backup", ANCHOR_HOSTS)
def test_each_backup_host_anchors_the_audit_chain_at_least_hourly_with_a_key_of_its_own(hosts, backup):
    host = hosts(backup)
    timer = host.service("kntc-audit-anchor.timer")
    assert timer.is_enabled and timer.is_running
    assert "OnCalendar=hourly" in host.file("/etc/systemd/system/kntc-audit-anchor.timer").content_string
    key = host.file("/etc/kntc/anchor/anchor.key")
    assert key.user == "kntc-anchor" and key.mode == 0o600
    assert "PRIVATE KEY" in host.check_output("head -1 /etc/kntc/anchor/anchor.key")
    assert "ED25519" in host.check_output("openssl pkey -in /etc/kntc/anchor/anchor.key -noout -text | head -1")
    # The database tier never holds an anchoring key.
    for db in ("dc-db1", "dr-db1"):
        assert not hosts(db).file("/etc/kntc/anchor/anchor.key").exists


@pytest.mark.parametrize("backup", ANCHOR_HOSTS)
def test_an_anchor_written_on_the_backup_host_verifies_against_its_public_key(hosts, backup):
    # Needs `kntc audit anchor|verify` in the release (the audit chain's commands).
    host = hosts(backup)
    before = host.run("ls /var/lib/kntc/anchors | wc -l").stdout.strip()
    run = host.run("systemctl start kntc-audit-anchor.service")
    assert run.rc == 0, host.run("journalctl -u kntc-audit-anchor -n 20 --no-pager").stdout
    after = host.run("ls /var/lib/kntc/anchors | wc -l").stdout.strip()
    assert int(after) >= max(1, int(before or 0)), f"no anchor written ({before} -> {after})"
    verify = host.run("set -a && . /etc/kntc/anchor.env && set +a && runuser -u kntc-anchor -- "
                      "/opt/kntc/current/bin/kntc audit verify --anchors /var/lib/kntc/anchors "
                      "--public-key /etc/kntc/anchor/anchor.pub")
    assert verify.rc == 0, verify.stdout + verify.stderr
