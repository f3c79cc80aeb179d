"""One backup stack on the lab: the repository hosts back up with `kntc-dr` on systemd timers, each
full and differential backup is restored into a scratch instance and verified there, and the results
reach Prometheus; a failed backup and a failed verification each page, and clear when put right.

Threat rows (runbooks/security.md): T101.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest

from dr import runbook

from .conftest import ADDR, DC_DB, FIGURES, PG_BIN, active_alerts, dc_leader, query, wait_for

pytestmark = pytest.mark.lab

BACKUP_HOSTS = {"dc-backup1": "1", "dr-backup1": "2"}  # host → its repository
KNTC_DR = "kntc-dr"  # on the PATH of the backup hosts; /etc/kntc-dr/dr.toml is its default
RESTORE_MD = Path(__file__).resolve().parents[2] / "runbooks" / "restore.md"


def unit_state(host, unit: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show -p ActiveState,Result,ExecMainStatus {unit}")
    return dict(line.split("=", 1) for line in out.splitlines())


def finished(host, unit: str) -> dict[str, str] | None:
    state = unit_state(host, unit)
    return state if state["ActiveState"] in ("inactive", "failed") else None


def results(host) -> dict:
    return json.loads(host.check_output("cat /var/lib/kntc-dr/results.json"))


@pytest.mark.parametrize("name", list(BACKUP_HOSTS))
def test_the_repository_hosts_back_up_with_kntc_dr_on_timers(lab, hosts, name):
    h = hosts(name)
    for t in ("full", "diff", "incr"):
        timer = h.service(f"kntc-dr-backup-{t}.timer")
        assert timer.is_enabled and timer.is_running, f"{name}: kntc-dr-backup-{t}.timer"
        unit = h.check_output(f"systemctl show -p Unit --value kntc-dr-backup-{t}.timer")
        assert unit == f"kntc-dr-backup@{t}.service"
    assert h.service("kntc-dr-metrics.timer").is_running
    # The raw pgBackRest units the stack replaced are gone: one set of units.
    assert not h.file("/etc/systemd/system/pgbackrest-backup@.service").exists
    conf, passfile = h.file("/etc/kntc-dr/dr.toml"), h.file("/etc/kntc-dr/pgpass")
    assert (conf.mode, conf.group) == (0o640, "postgres")
    assert (passfile.mode, passfile.user) == (0o600, "postgres")
    info = json.loads(h.check_output(f"{KNTC_DR} info --json"))
    assert info["stanza"] == "kntc-dc" and info["backups"], info
    # Every backup the stack took carries its manifest (restore point + key-table digests).
    assert "kntc-manifest" in info["backups"][-1]["annotations"]


@pytest.mark.parametrize("name", DC_DB)
def test_kntc_dr_on_a_database_host_reads_either_repository_and_runs_no_timer(lab, hosts, name):
    """Where the data is, the runbooks' restore points, restores and checks are kntc-dr commands too:
    its site's stanza, every repository of pgbackrest.conf, no passphrase and no backup timer."""
    h = hosts(name)
    conf = h.file("/etc/kntc-dr/dr.toml")
    assert (conf.mode, conf.user, conf.group) == (0o640, "root", "postgres")
    assert "cipher_pass_file" not in conf.content_string and "source_dsn" not in conf.content_string
    for repo in BACKUP_HOSTS.values():
        info = json.loads(h.check_output(f"{KNTC_DR} --repo {repo} info --json"))
        assert (info["stanza"], info["repo"], info["ok"]) == ("kntc-dc", int(repo), True), info
        assert info["backups"], f"{name}: repo{repo} lists no backup"
    assert not h.run("systemctl list-unit-files 'kntc-dr-backup*' --no-legend").stdout.strip()
    bad = h.run(f"{KNTC_DR} --repo 9 info")
    assert bad.rc == 2 and "Traceback" not in bad.stderr, bad.stderr


def test_a_differential_backup_is_verified_and_its_figures_reach_prometheus(lab, hosts):
    h = hosts("dc-backup1")
    h.run("systemctl reset-failed 'kntc-dr-*'")
    t0 = time.time()
    backup = h.run("systemctl start kntc-dr-backup@diff.service")
    assert backup.rc == 0, h.run("journalctl -u kntc-dr-backup@diff -n 30 --no-pager").stdout
    # The verification follows a differential backup by itself (OnSuccess=).
    wait_for(lambda: h.file("/var/lib/kntc-dr/results.json").exists
             and (results(h).get("verify") or {}).get("time", 0) > t0, 600,
             "the verification after the differential backup", interval=3)
    state = wait_for(lambda: finished(h, "kntc-dr-verify-restore@diff.service"), 60, "the verification unit ends")
    log = h.run("journalctl -u kntc-dr-verify-restore@diff -n 40 --no-pager").stdout
    assert state["Result"] == "success", log
    assert "amcheck" in log and "key tables" in log
    got = results(h)
    assert got["backup"]["diff"]["result"] == 1 and got["verify"]["result"] == 1
    reports = h.check_output("ls -1t /var/lib/kntc-dr/reports").split()
    assert any(r.startswith("verify-") and r.endswith(".json") for r in reports)
    FIGURES.setdefault("diff backup + restore verification on dc-backup1 (s)", []).append(time.time() - t0)

    def in_prometheus() -> bool:
        ok = query("dc-mon1", 'kntc_restore_verify_last_result{instance="dc-backup1", repo="1"} == 1')
        fresh = query("dc-mon1", f'kntc_backup_last_success_timestamp_seconds{{instance="dc-backup1", type="diff"}} > {t0}')
        return bool(ok and fresh)

    wait_for(in_prometheus, 120, "the backup and verification results in the DC's Prometheus", interval=5)
    # The verification skips incremental backups (verify_after = full, diff).
    skip = h.run(f"{KNTC_DR} verify-restore --after incr")
    assert skip.rc == 0 and "skipped" in skip.stdout


def test_a_failed_backup_pages_and_clears_when_the_next_one_succeeds(lab, hosts):
    """The DR's repository is made unwritable: the backup into it fails and KntcBackupFailed pages;
    once it is writable again, the next backup clears the alert."""
    h = hosts("dr-backup1")
    stanza_dir = "/var/lib/pgbackrest/backup/kntc-dc"
    mode = h.check_output(f"stat -c %a {stanza_dir}")
    assert h.run(f"chmod a-w {stanza_dir}").rc == 0
    t0 = time.monotonic()
    try:
        failed = h.run("systemctl start kntc-dr-backup@incr.service")
        assert failed.rc != 0
        assert results(h)["backup"]["incr"]["result"] == 0
        firing = wait_for(lambda: [a for a in active_alerts("dc-mon1", "KntcBackupFailed")
                                   if a["labels"].get("repo") == "2" and a["labels"].get("type") == "incr"],
                          180, "KntcBackupFailed for repository 2 in the DC's Alertmanager", interval=3)
        FIGURES.setdefault("fault to alert, repository unwritable -> KntcBackupFailed (s)", []).append(
            time.monotonic() - t0)
        assert firing[0]["labels"]["severity"] == "page" and firing[0]["labels"]["site"] == "dr"
        assert firing[0]["annotations"]["runbook_url"].endswith("runbooks/alerts.md#kntcbackupfailed")
    finally:
        h.run(f"chmod {mode} {stanza_dir}")
    h.run("systemctl reset-failed kntc-dr-backup@incr.service")
    again = h.run("systemctl start kntc-dr-backup@incr.service")
    assert again.rc == 0, h.run("journalctl -u kntc-dr-backup@incr -n 30 --no-pager").stdout
    wait_for(lambda: not [a for a in active_alerts("dc-mon1", "KntcBackupFailed")
                          if a["labels"].get("repo") == "2" and a["labels"].get("type") == "incr"],
             300, "KntcBackupFailed resolved", interval=5)


def newest_label(host) -> str:
    return json.loads(host.check_output(f"{KNTC_DR} info --json"))["backups"][-1]["label"]


def test_a_corrupted_backup_fails_the_scheduled_verification_and_pages(lab, hosts):
    """Bytes of a file of the newest full backup are overwritten in the repository: the scheduled
    verification fails and KntcRestoreVerificationFailed pages. The runbook's remedy (a new full
    backup, then expiring the damaged set) makes the next verification pass and clears it."""
    h = hosts("dc-backup1")
    h.run("systemctl reset-failed 'kntc-dr-*'")
    assert h.run(f"{KNTC_DR} backup --type full").rc == 0
    damaged = newest_label(h)
    victim = h.check_output(
        f"find /var/lib/pgbackrest/backup/kntc-dc/{damaged}/pg_data/base -type f -size +8k | sort | head -1")
    assert victim, "no data file in the newest backup"
    assert h.run(f"dd if=/dev/urandom of={victim} bs=1 count=64 seek=4096 conv=notrunc status=none").rc == 0
    t0 = time.monotonic()
    failed = h.run("systemctl start kntc-dr-verify-restore@full.service")
    assert failed.rc != 0
    assert results(h)["verify"]["result"] == 0
    log = h.run("journalctl -u kntc-dr-verify-restore@full -n 40 --no-pager").stdout
    assert "KHÔNG ĐẠT / FAIL" in log
    firing = wait_for(lambda: [a for a in active_alerts("dc-mon1", "KntcRestoreVerificationFailed")
                               if a["labels"].get("repo") == "1"],
                      180, "KntcRestoreVerificationFailed for repository 1", interval=3)
    FIGURES.setdefault("fault to alert, corrupted backup -> KntcRestoreVerificationFailed (s)", []).append(
        time.monotonic() - t0)
    assert firing[0]["labels"]["severity"] == "page"
    # runbooks/restore.md, "Decision on FAIL": a new full backup, then the damaged set goes.
    assert h.run(f"{KNTC_DR} backup --type full").rc == 0
    refused = h.run(f"{KNTC_DR} expire --set {newest_label(h)}")
    assert refused.rc != 0 and "newest" in refused.stderr  # never the only good copy
    assert h.run(f"{KNTC_DR} expire --set {damaged}").rc == 0
    h.run("systemctl reset-failed 'kntc-dr-verify-restore@*'")
    again = h.run("systemctl start kntc-dr-verify-restore@full.service")
    assert again.rc == 0, h.run("journalctl -u kntc-dr-verify-restore@full -n 30 --no-pager").stdout
    wait_for(lambda: not [a for a in active_alerts("dc-mon1", "KntcRestoreVerificationFailed")
                          if a["labels"].get("repo") == "1"], 300, "KntcRestoreVerificationFailed resolved", interval=5)


def sql(host, statement: str) -> str:
    return host.check_output(f"runuser -u postgres -- psql -d kntc -Atc \"{statement}\"")


def test_archiving_goes_on_when_the_other_sites_repository_is_lost_and_resumes_by_itself(lab, hosts):
    """The DC's database hosts lose the DR's repository host: after the grace period the archive
    guard sets repository 2 aside, WAL still reaches repository 1 and the alert says so; when the host
    answers again, archiving to it resumes with no one touching a file."""
    leader = hosts(dc_leader(hosts))
    dc = [hosts(n) for n in DC_DB]
    cut = (f"nft add table inet kntc_drill && nft add chain inet kntc_drill out "
           f"'{{ type filter hook output priority 0; }}' && "
           f"nft add rule inet kntc_drill out ip daddr {ADDR['dr-backup1']} tcp dport 8432 reject with tcp reset")
    for h in dc:
        h.run("nft delete table inet kntc_drill")
        assert h.run(cut).rc == 0
    t0 = time.monotonic()
    try:
        wait_for(lambda: leader.file("/etc/pgbackrest/conf.d/repo2.conf.off").exists, 180,
                 "the archive guard sets repository 2 aside on the leader", interval=3)
        FIGURES.setdefault("repository lost -> archiving to it set aside (s)", []).append(time.monotonic() - t0)
        # WAL goes on to repository 1: a segment switched now is archived.
        sql(leader, "CREATE TABLE IF NOT EXISTS public.kntc_guard_drill (at timestamptz); "
                    "INSERT INTO public.kntc_guard_drill VALUES (now())")
        wal = sql(leader, "SELECT pg_walfile_name(pg_switch_wal())")
        wait_for(lambda: sql(leader, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= wal, 120,
                 f"{wal} archived with repository 2 set aside", interval=2)
        firing = wait_for(lambda: [a for a in active_alerts("dc-mon1", "KntcArchiveRepoSetAside")
                                   if a["labels"].get("repo") == "2" and a["labels"].get("site") == "dc"],
                          240, "KntcArchiveRepoSetAside in the DC's Alertmanager", interval=5)
        assert firing[0]["labels"]["severity"] == "ticket"
    finally:
        for h in dc:
            h.run("nft delete table inet kntc_drill")
    wait_for(lambda: leader.file("/etc/pgbackrest/conf.d/repo2.conf").exists
             and not leader.file("/etc/pgbackrest/conf.d/repo2.conf.off").exists, 120,
             "the archive guard puts repository 2 back", interval=3)
    sql(leader, "INSERT INTO public.kntc_guard_drill VALUES (now())")
    wal = sql(leader, "SELECT pg_walfile_name(pg_switch_wal())")
    backup = hosts("dr-backup1")

    def in_repo2() -> bool:
        info = json.loads(backup.check_output(f"{KNTC_DR} info --json"))
        return any((a.get("max") or "") >= wal for a in info["archives"])

    wait_for(in_repo2, 180, f"{wal} archived into repository 2 again", interval=5)
    sql(leader, "DROP TABLE IF EXISTS public.kntc_guard_drill")


def run_remote_step(host, step_id: str, env: dict[str, str]) -> runbook.StepResult:
    """A step of runbooks/restore.md as written, on a lab host, checked against its `> expect:` line."""
    step = runbook.steps(RESTORE_MD)[step_id]
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    res = host.run(f"cd /tmp && env {exports} bash -euo pipefail -c {shlex.quote(step.command)}")
    return runbook.StepResult(step, res.rc, res.stdout, res.stderr)


def test_the_restore_runbooks_steps_run_as_written_on_a_backup_host(lab, hosts):
    """runbooks/restore.md with its "Production / lab" values, on dc-backup1: inspect the repository,
    back up, restore into a scratch directory and look inside, stop it, verify the newest backup."""
    h = hosts("dc-backup1")
    env = {"KNTC_DR_STATE": "/var/lib/kntc-dr", "SCRATCH": "/var/lib/kntc-dr/scratch/manual",
           "SCRATCH_PORT": "55478", "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    h.run(f"runuser -u postgres -- {PG_BIN}/pg_ctl stop -D {env['SCRATCH']} -m immediate; "
          f"rm -rf {env['SCRATCH']}")
    try:
        for step in ("info", "backup-incr", "restore-scratch", "inspect", "stop-scratch", "verify-restore"):
            res = run_remote_step(h, step, env)
            assert res.ok, res.explain()
    finally:
        h.run(f"runuser -u postgres -- {PG_BIN}/pg_ctl stop -D {env['SCRATCH']} -m immediate; "
              f"rm -rf {env['SCRATCH']}")
