"""move_etcd.yml on the running lab: the DR's etcd moves off its database hosts (dr-db1, dr-db2) onto
the app and monitoring hosts, then back, one member at a time, as runbooks/move-etcd.md tells an
operator to do. Throughout, the DR's standby cluster keeps its standby leader (its postmaster is
never restarted) and the site's etcd keeps its quorum; afterwards Patroni and etcdctl use the new
members, the old ones run no etcd and hold no member certificate or data.

Threat rows (runbooks/security.md): T107.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dr.runbook import steps

from .conftest import ADDR, ANSIBLE_DIR, INVENTORY, MONITORS, REPO, VENV_BIN, query, run_playbook, wait_for

pytestmark = pytest.mark.lab

DR_DB = ["dr-db1", "dr-db2"]
NEW = ["dr-app1", "dr-mon1"]
ORIGINAL = ["dr-backup1", *DR_DB]
ETCDCTL = ("ETCDCTL_API=3 etcdctl --cacert=/etc/kntc/tls/ca.crt --cert=/etc/kntc/tls/etcd-client.crt "
           "--key=/etc/kntc/tls/etcd-client.key --endpoints=https://127.0.0.1:2379 --command-timeout=5s")


def inventory(tmp: Path, add: list[str], leaving: list[str]) -> Path:
    """The lab's inventory with `add` in group etcd and `leaving` in group etcd_leaving (step 1 of the
    runbook)."""
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ANSIBLE_DIR / "inventories/lab/group_vars", tmp / "group_vars", dirs_exist_ok=True)
    text = INVENTORY.read_text()
    extra = "".join(f"        {h}:\n" for h in add)
    text = text.replace("    etcd:\n      hosts:\n", "    etcd:\n      hosts:\n" + extra, 1)
    text += "    etcd_leaving:\n      hosts:\n" + "".join(f"        {h}:\n" for h in leaving)
    (tmp / "hosts.yml").write_text(text)
    return tmp / "hosts.yml"


def move(inv: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(inv), "move_etcd.yml", "-e", "move_site=dr"],
                          cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=1200)


def changed_in(out: str, task: str) -> bool:
    """Whether the task reported `changed` on any host in a playbook's output."""
    return any(section.startswith(task + "]") and "\nchanged:" in section for section in out.split("TASK ["))


def members(hosts, via: str) -> set[str]:
    out = hosts(via).check_output(f"{ETCDCTL} member list -w json")
    return {m.get("name", "") for m in json.loads(out)["members"]}


def dr_cluster(hosts) -> dict[str, tuple[str, str]]:
    """Member -> (role, state) of the DR's Patroni cluster, as patronictl (its etcd3 hosts) sees it."""
    out = hosts("dr-db1").check_output("patronictl -c /etc/patroni/config.yml list -f json")
    return {m["Member"]: (m["Role"], m["State"]) for m in json.loads(out)}


def scraped_etcd(monitor: str) -> set[str]:
    """The DR's etcd members the monitoring host's Prometheus scrapes and finds up."""
    return {r["metric"]["instance"] for r in query(monitor, 'up{job="etcd", site="dr"} == 1')}


def postmaster_started(hosts, host: str) -> str:
    return hosts(host).check_output("runuser -u postgres -- psql -X -At -h /var/run/postgresql "
                                    "-c 'select pg_postmaster_start_time()'")


class Watch(threading.Thread):
    """Samples the DR's cluster every three seconds, any sample without a running standby leader
    kept. A lost leader key stays lost for at least Patroni's ttl (6 s), so no loss falls between
    two samples; each sample starts patronictl on a lab host, CPU the playbooks need."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.hosts, self.stop, self.bad, self.samples = hosts, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                cluster = dr_cluster(self.hosts)
                if not any(role == "Standby Leader" and state in ("running", "streaming")
                           for role, state in cluster.values()):
                    self.bad.append(cluster)
            except Exception as exc:  # a failed sample is a finding, kept as such
                self.bad.append(repr(exc)[:200])
            self.samples += 1
            time.sleep(3)


def test_the_runbook_names_the_commands_this_test_runs():
    book = steps(REPO / "runbooks" / "move-etcd.md")
    assert "move_etcd.yml -e move_site=" in book["move"].command
    assert "--tags common_firewall" in book["finish"].command


def test_etcd_moves_off_the_database_hosts_and_back_while_the_standby_leader_stays(lab, hosts, tmp_path):
    wait_for(lambda: members(hosts, "dr-db1") == set(ORIGINAL), 60, "the DR's etcd has its three members")
    leader = next(m for m, (role, _) in dr_cluster(hosts).items() if role == "Standby Leader")
    started = postmaster_started(hosts, leader)
    watch = Watch(hosts)
    watch.start()
    try:
        t0 = time.monotonic()
        r = move(inventory(tmp_path / "off", add=NEW, leaving=DR_DB))
        off = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-4000:]
        assert members(hosts, "dr-app1") == {"dr-backup1", *NEW}
        for h in DR_DB:
            assert not hosts(h).service("etcd").is_running and not hosts(h).service("etcd").is_enabled
            assert not hosts(h).file("/var/lib/etcd/default").exists
            assert not hosts(h).file("/etc/kntc/tls/etcd-peer.key").exists
            # Patroni (and patronictl) now name the new members only
            conf = hosts(h).file("/etc/patroni/config.yml").content_string
            assert f"{ADDR['dr-app1']}:2379" in conf and f"{ADDR['dr-db1']}:2379" not in conf, conf
        # both sites' Prometheus scrape the members the DR has now, and not those that left
        for mon in MONITORS:
            wait_for(lambda m=mon: scraped_etcd(m) == {"dr-backup1", *NEW}, 60, f"{mon} scraping the new members")
        # a second run changes no membership
        r = move(inventory(tmp_path / "off", add=NEW, leaving=DR_DB))
        assert r.returncode == 0, r.stdout[-4000:]
        for task in ("etcd : Announce this host to the cluster", "etcd : Take this host out of the membership"):
            assert not changed_in(r.stdout, task), f"{task} changed on a second run: {r.stdout[-3000:]}"
        assert members(hosts, "dr-app1") == {"dr-backup1", *NEW}

        t0 = time.monotonic()
        r = move(inventory(tmp_path / "back", add=NEW, leaving=NEW))
        back = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-4000:]
        assert members(hosts, "dr-db1") == set(ORIGINAL)
        for mon in MONITORS:
            wait_for(lambda m=mon: scraped_etcd(m) == set(ORIGINAL), 60, f"{mon} scraping the original members")
        for h in NEW:
            assert not hosts(h).service("etcd").is_running
            assert not hosts(h).file("/etc/kntc/tls/etcd-client.key").exists
    finally:
        watch.stop.set()
        watch.join(10)
        # step 3: the hosts that left are out of the inventory again; the firewall forgets them
        run_playbook("site.yml", "--limit", "dr", "--tags", "common_firewall", timeout=600)
    print(f"\netcd of the DR moved off its database hosts in {off:.0f} s and back in {back:.0f} s; "
          f"{watch.samples} samples of the DR cluster, {len(watch.bad)} without a running standby leader")
    assert not watch.bad, watch.bad[:5]
    assert postmaster_started(hosts, leader) == started, "the standby leader's PostgreSQL was restarted"
