"""The hosts a drill acts on, read from an Ansible inventory (infra/ansible/inventories/<name>).

The same inventory that provisions the sites drives the drills: groups `dc`/`dr` (sites),
`database`, `balancer`, `app`, `backup`; each host's `ansible_host`, `ansible_user` and
`ansible_ssh_private_key_file`. Commands run over SSH through pyinfra (one connection per host,
kept for the whole drill). Secrets are read from the directory the playbooks generate them in
(`kntc_secrets_dir`, infra/lab/.state/secrets in the lab).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr.errors import ConfigError, DrError

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_DIR = REPO / "infra" / "ansible"
DEFAULT_INVENTORY = ANSIBLE_DIR / "inventories" / "lab"
PATRONICTL = "patronictl -c /etc/patroni/config.yml"
PSQL = "cd /tmp && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1"
_RC = "__KNTC_DR_RC="


class RemoteError(DrError):
    """A command on a host failed (or the host did not answer)."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    site: str
    groups: frozenset[str]
    user: str = "root"
    key: str | None = None
    become: bool = False  # ansible_become: commands run through `sudo -n` (production's admin user)
    # The inventory's ansible_ssh_common_args (the lab's names its known_hosts file): host keys
    # are checked as strictly as Ansible checks them.
    ssh_options: tuple[str, ...] = ()

    def root(self, command: str) -> str:
        """`command` as root on this host: as is for root, through sudo for an admin user."""
        return command if self.user == "root" or not self.become else f"sudo -n bash -c {shlex.quote(command)}"

    def ssh_argv(self, command: str, connect_timeout: int = 3) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
                *self.ssh_options, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
                "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3"]
        if self.key:
            argv += ["-i", self.key]
        return [*argv, f"{self.user}@{self.address}", command]


@dataclass
class Inventory:
    """Hosts by site and tier, plus where the generated secrets and the CA are."""

    path: Path
    hosts: dict[str, Host]
    secrets_dir: Path
    ca_file: Path
    primary_site: str = "dc"
    vars: dict[str, Any] = field(default_factory=dict)
    # kntc_sites of group_vars: the inventory alone says which sites there are.
    sites: tuple[str, ...] = ("dc", "dr")

    def select(self, site: str | None, group: str) -> list[Host]:
        return [h for h in self.hosts.values() if group in h.groups and (site is None or h.site == site)]

    def db(self, site: str) -> list[Host]:
        return self.select(site, "database")

    def etcd(self, site: str) -> list[Host]:
        """The site's etcd members: group etcd less the hosts leaving it (infra/ansible/move_etcd.yml)."""
        return [h for h in self.select(site, "etcd") if "etcd_leaving" not in h.groups]

    def balancers(self, site: str) -> list[Host]:
        return self.select(site, "balancer")

    def backup(self, site: str) -> list[Host]:
        return self.select(site, "backup")

    def secret(self, name: str) -> str:
        p = self.secrets_dir / name
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"thiếu bí mật / missing secret {p}: run the site playbook first ({exc})") from exc

    def other(self, site: str) -> str:
        return next(s for s in self.sites if s != site)


def _render(value: str, inventory_dir: Path) -> str:
    """The only templating the lab inventory uses: {{ inventory_dir }} and {{ playbook_dir }}."""
    return (value.replace("{{ inventory_dir }}", str(inventory_dir))
            .replace("{{ playbook_dir }}", str(ANSIBLE_DIR)))


def load_inventory(path: Path | None = None) -> Inventory:
    """Read hosts.yml (+ group_vars/all.yml) of an Ansible inventory directory."""
    import yaml  # PyYAML comes with the ops extra (Ansible): only the site commands need it

    inv_dir = Path(path or os.environ.get("KNTC_DR_INVENTORY") or DEFAULT_INVENTORY).resolve()
    hosts_file = inv_dir / "hosts.yml" if inv_dir.is_dir() else inv_dir
    inv_dir = hosts_file.parent
    if not hosts_file.exists():
        raise ConfigError(f"không thấy kho máy / no inventory at {hosts_file}: for the lab run "
                          f"`infra/lab/lab.py up`, or pass --inventory")
    data = yaml.safe_load(hosts_file.read_text()) or {}
    root = data.get("all", {})
    gvars: dict[str, Any] = {}
    for f in (ANSIBLE_DIR / "group_vars" / "all.yml", inv_dir / "group_vars" / "all.yml"):
        if f.exists():
            gvars.update(yaml.safe_load(f.read_text()) or {})
    gvars.update(root.get("vars") or {})
    membership: dict[str, set[str]] = {}

    def walk(name: str, node: dict[str, Any] | None) -> list[str]:
        node = node or {}
        members = list((node.get("hosts") or {}).keys())
        for child, sub in (node.get("children") or {}).items():
            members += walk(child, sub)
        for h in members:
            membership.setdefault(h, set()).add(name)
        return members

    walk("all", root)
    host_vars = dict(root.get("hosts") or {})
    for child in (root.get("children") or {}).values():
        for h, hv in ((child or {}).get("hosts") or {}).items():
            if hv:
                host_vars[h] = {**(host_vars.get(h) or {}), **hv}
    sites = tuple(str(s) for s in gvars.get("kntc_sites") or ())
    if len(sites) != 2:
        raise ConfigError(f"kho máy cần đúng hai site / the inventory must name two sites in kntc_sites "
                          f"(group_vars/all.yml), not {list(sites)}")
    key = gvars.get("ansible_ssh_private_key_file")
    ssh_options = tuple(shlex.split(_render(str(gvars.get("ansible_ssh_common_args", "")), inv_dir)))
    hosts: dict[str, Host] = {}
    for name, groups in membership.items():
        hv = host_vars.get(name) or {}
        site = next((s for s in sites if s in groups), None)
        if site is None:
            continue
        hk = hv.get("ansible_ssh_private_key_file", key)
        hosts[name] = Host(name, str(hv.get("ansible_host", name)), site, frozenset(groups),
                           str(hv.get("ansible_user", gvars.get("ansible_user", "root"))),
                           _render(str(hk), inv_dir) if hk else None,
                           bool(hv.get("ansible_become", gvars.get("ansible_become", False))), ssh_options)
    secrets = Path(_render(str(gvars.get("kntc_secrets_dir", "{{ playbook_dir }}/../lab/.state/secrets")),
                           inv_dir)).resolve()
    pki = Path(_render(str(gvars.get("kntc_pki_dir", "{{ playbook_dir }}/../lab/.state/pki")), inv_dir)).resolve()
    inv = Inventory(hosts_file, hosts, secrets, pki / "ca.crt", str(gvars.get("kntc_primary_site", "dc")), gvars,
                    sites)
    for site in sites:
        if not inv.db(site):
            raise ConfigError(f"kho máy thiếu máy CSDL ở {site} / the inventory has no database host in site "
                              f"{site!r}: add hosts to both the '{site}' and 'database' groups")
    return inv


class Lab:
    """Run commands on the inventory's hosts through pyinfra's SSH connector."""

    def __init__(self, inventory: Inventory) -> None:
        from pyinfra.api import Config, State
        from pyinfra.api import Inventory as PyInventory

        # pyinfra logs each connection error; a failure reaches the drill as a RemoteError with the
        # reason instead. Host keys are checked against the inventory's known_hosts file (the lab
        # writes its own), or the operator's default one.
        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        self.inv = inventory
        names = []
        for h in inventory.hosts.values():
            data: dict[str, Any] = {"ssh_hostname": h.address, "ssh_user": h.user,
                                    "ssh_strict_host_key_checking": "yes", "ssh_connect_timeout": 5}
            known = [o.split("=", 1)[1] for o in h.ssh_options if o.startswith("UserKnownHostsFile=")]
            if known:
                data["ssh_known_hosts_file"] = known[0]
            if h.key:
                data["ssh_key"] = h.key
            names.append((h.name, data))
        self._py = PyInventory((names, {}))
        self._state = State(self._py, Config(CONNECT_TIMEOUT=5))
        self._locks = {h.name: threading.Lock() for h in inventory.hosts.values()}

    def _host(self, name: str) -> Any:
        h = self._py.get_host(name)
        if not h.connected:
            h.init(self._state)
            h.connect(reason="drill", show_errors=False, raise_exceptions=True)
        return h

    def run(self, host: str | Host, command: str, check: bool = True, timeout: float = 120) -> tuple[int, str, str]:
        """Run `command` with bash on `host`; returns (exit code, stdout, stderr)."""
        from pyinfra.api.command import StringCommand

        name = host.name if isinstance(host, Host) else host
        h = self.inv.hosts[name]
        with self._locks[name]:
            try:
                ph = self._host(name)
                _, out = ph.run_shell_command(
                    StringCommand(f"{h.root(f'bash -c {shlex.quote(command)}')}; printf '{_RC}%s\\n' $?"),
                    _timeout=int(timeout), _success_exit_codes=list(range(256)))
            except Exception as exc:
                ph = self._py.get_host(name)
                if ph.connected:
                    ph.disconnect()
                raise RemoteError(f"{name}: `{command}` did not complete: {type(exc).__name__}: {exc}") from exc
        stdout, stderr = out.stdout, out.stderr
        head, sep, tail = stdout.rpartition(_RC)
        if not sep:
            raise RemoteError(f"{name}: `{command}` gave no exit status (connection lost?): {stderr.strip()}")
        rc, stdout = int(tail.strip() or 255), head.removesuffix("\n")
        if check and rc != 0:
            raise RemoteError(f"{name}: `{command}` exited {rc}: {stderr.strip() or stdout.strip()}")
        return rc, stdout, stderr

    def put_text(self, host: str | Host, path: str, text: str) -> None:
        """Write `text` to `path` on `host` over the SSH connection (SFTP): a secret never appears on
        a command line. The caller makes the file's folder private first."""
        import io

        name = host.name if isinstance(host, Host) else host
        with self._locks[name]:
            try:
                ok = self._host(name).put_file(io.BytesIO(text.encode()), path)
            except Exception as exc:
                raise RemoteError(f"{name}: writing {path} did not complete: {type(exc).__name__}: {exc}") from exc
        if not ok:
            raise RemoteError(f"{name}: writing {path} failed")

    def out(self, host: str | Host, command: str, timeout: float = 120) -> str:
        return self.run(host, command, timeout=timeout)[1].strip()

    def sql(self, host: str | Host, query: str, db: str = "postgres") -> str:
        return self.out(host, f"{PSQL} -d {db} -c {shlex.quote(query)}")

    def patroni_members(self, site: str) -> list[dict[str, Any]]:
        """`patronictl list` of the site's cluster, from the first database host that answers."""
        last: Exception | None = None
        for h in self.inv.db(site):
            try:
                return json.loads(self.out(h, f"{PATRONICTL} list -f json"))
            except (RemoteError, ValueError) as exc:
                last = exc
        raise RemoteError(f"không đọc được cụm {site} / cannot list the {site} cluster: {last}")

    def patroni_config(self, site: str) -> dict[str, Any]:
        import yaml

        for h in self.inv.db(site):
            rc, out, _ = self.run(h, f"{PATRONICTL} show-config", check=False)
            if rc == 0:
                return yaml.safe_load(out) or {}
        raise RemoteError(f"không đọc được cấu hình / cannot read the dynamic configuration of site {site}")

    def edit_config(self, site: str, *settings: str) -> str:
        """`patronictl edit-config --force -s k=v …` on the site's first reachable database host.

        patronictl writes the DCS key itself, so it works while the site's Patroni daemons are
        stopped (fenced), as long as the site's etcd answers."""
        args = " ".join(f"-s {shlex.quote(s)}" for s in settings)
        last = ""
        for h in self.inv.db(site):
            rc, out, err = self.run(h, f"{PATRONICTL} edit-config --force {args}", check=False)
            if rc == 0:
                return out
            last = err or out
        raise RemoteError(f"edit-config {site} thất bại / failed: {last.strip()}")

    def close(self) -> None:
        for h in self._py:
            if h.connected:
                # closing a connection that may already be dead, at the end of a drill
                with contextlib.suppress(Exception):
                    h.disconnect()
