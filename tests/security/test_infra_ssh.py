"""SSH: an impostor host, a password guesser and a downgrading client, against the lab's hosts.

Threat rows (runbooks/security.md): T41, T42.
"""

from __future__ import annotations

import configparser
import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.infra.conftest import ANSIBLE_DIR, INVENTORY, VENV_BIN

from .lab_helpers import ADDR, STATE

pytestmark = pytest.mark.lab

KEY = STATE / "id_ed25519"


def playbook_ssh_args() -> list[str]:
    """The ssh options Ansible uses for the lab: ansible.cfg's ssh_args, then the inventory's."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ANSIBLE_DIR / "ansible.cfg")
    args = shlex.split(cfg.get("ssh_connection", "ssh_args", fallback=""))
    inv = yaml.safe_load(INVENTORY.read_text())["all"]["vars"]
    args += shlex.split(inv.get("ansible_ssh_common_args", ""))
    if cfg.get("defaults", "host_key_checking", fallback="True").strip().lower() in ("false", "no", "0"):
        args = ["-o", "StrictHostKeyChecking=no", *args]
    # Each option is "-o" and its value; the connection sharing ones do not concern a test.
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    return [a for flag, value in pairs if not value.startswith(("ControlMaster", "ControlPersist"))
            for a in (flag, value)]


def ssh(args: list[str], addr: str, command: str = "true") -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", *args, f"root@{addr}", command],
                          capture_output=True, text=True, timeout=60)


def server_only(tmp_path: Path) -> list[str]:
    """Client options for tests aimed at the server: the lab's known host keys, checked."""
    known = tmp_path / "known_hosts"
    src = STATE / "known_hosts"
    known.write_text(src.read_text() if src.exists() else "")
    return ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=accept-new"]


def impostor_known_hosts(known: Path, tmp_path: Path) -> Path:
    """A copy of `known` in which dc-app1's address carries dc-app2's keys: what a client that
    checks host keys sees when another machine answers at dc-app1's address."""
    lines = known.read_text().splitlines()
    victim, impostor = ADDR["dc-app1"], ADDR["dc-app2"]
    forged = [ln for ln in lines if not ln.startswith(victim + " ")]
    forged += [victim + ln[len(impostor):] for ln in lines if ln.startswith(impostor + " ")]
    fake = tmp_path / "known_hosts"
    fake.write_text("\n".join(forged) + "\n")
    return fake


def test_a_host_that_answers_with_another_hosts_key_is_refused_by_the_playbooks(lab, tmp_path):
    # A machine that takes over dc-app1's address (a man in the middle, a rebuilt host nobody
    # checked) shows its own key; Ansible must stop, not send it commands and secrets.
    args = playbook_ssh_args()
    known = [a.split("=", 1)[1] for a in args if a.startswith("UserKnownHostsFile=")]
    if known and known[0] != "/dev/null":
        fake = impostor_known_hosts(Path(known[0]), tmp_path)
        args = [f"UserKnownHostsFile={fake}" if a == f"UserKnownHostsFile={known[0]}" else a for a in args]
    r = ssh([*args, "-i", str(KEY)], ADDR["dc-app1"])
    assert r.returncode != 0, "Ansible's ssh settings accepted a host key that is not the host's"
    assert "Host key verification failed" in r.stderr or "IDENTIFICATION HAS CHANGED" in r.stderr, r.stderr


PROBE = """
- name: What a play would do on a host it reached
  hosts: dc-app1
  gather_facts: false
  tasks:
    - name: Run a command on the host
      ansible.builtin.command: hostname
      changed_when: false
"""


def test_the_playbooks_own_strategy_stops_at_an_impostors_key(lab, tmp_path):
    # The strategy (Mitogen) builds its own ssh command line from the inventory and ansible.cfg;
    # the same impostor must stop a real play there, before the first task reaches the host.
    book = tmp_path / "probe.yml"
    book.write_text(PROBE)
    common = yaml.safe_load(INVENTORY.read_text())["all"]["vars"]["ansible_ssh_common_args"]
    known = next(a.split("=", 1)[1] for a in shlex.split(common) if a.startswith("UserKnownHostsFile="))
    fake = impostor_known_hosts(Path(known), tmp_path)

    def play(known_hosts: Path) -> subprocess.CompletedProcess:
        args = common.replace(f"UserKnownHostsFile={known}", f"UserKnownHostsFile={known_hosts}")
        return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "inventories/lab", str(book),
                               "-e", json.dumps({"ansible_ssh_common_args": args})],
                              cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)

    honest = play(Path(known))
    assert honest.returncode == 0 and "ok: [dc-app1]" in honest.stdout, honest.stdout[-3000:]
    forged = play(fake)
    assert forged.returncode != 0 and "ok: [dc-app1]" not in forged.stdout, forged.stdout[-3000:]
    said = forged.stdout + forged.stderr
    # OpenSSH says "Host key verification failed", Mitogen "... mismatching host key".
    assert "UNREACHABLE" in said and "host key" in said.lower(), said[-3000:]


@pytest.mark.parametrize("host", ["dc-db1", "dc-app2", "dr-backup1"])
def test_a_password_guesser_gets_no_password_prompt_and_at_most_three_tries(lab, tmp_path, host):
    opts = server_only(tmp_path)
    r = ssh([*opts, "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"],
            ADDR[host])
    assert r.returncode == 255 and "Permission denied (publickey)" in r.stderr, r.stderr
    # Three wrong keys use up the connection's tries: the right key offered fourth is too late.
    wrong = []
    for i in range(3):
        k = tmp_path / f"wrong{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
        wrong += ["-i", str(k)]
    r = ssh([*opts, "-o", "IdentitiesOnly=yes", *wrong, "-i", str(KEY)], ADDR[host])
    assert r.returncode != 0, f"{host}: a fourth key was still tried after three failures"


@pytest.mark.parametrize(("option", "weak"), [
    ("HostKeyAlgorithms", "ecdsa-sha2-nistp256,ssh-rsa"),
    ("KexAlgorithms", "ecdh-sha2-nistp256,diffie-hellman-group14-sha256"),
    ("Ciphers", "aes256-ctr"),
])
def test_a_client_that_offers_only_weak_algorithms_is_refused(lab, tmp_path, option, weak):
    r = ssh([*server_only(tmp_path), "-o", f"{option}={weak}", "-i", str(KEY)], ADDR["dc-db2"])
    assert r.returncode == 255 and "no matching" in r.stderr, f"{option}={weak} accepted: {r.stderr}"


def test_only_the_operators_group_may_log_in(hosts):
    out = hosts("dc-db1").check_output("sshd -T | grep -E '^(allowgroups|maxauthtries|passwordauthentication|"
                                        "permitrootlogin|allowtcpforwarding) '")
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert got == {"allowgroups": "kntc-ssh", "maxauthtries": "3", "passwordauthentication": "no",
                   "permitrootlogin": "without-password", "allowtcpforwarding": "no"}, got
