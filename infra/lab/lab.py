#!/usr/bin/env python3
"""The two-site KNTC lab: Debian hosts with systemd as Podman containers.

    infra/lab/lab.py up       build the image if missing, start both sites, provision with site.yml
    infra/lab/lab.py down     remove the lab containers and networks (keeps the image cache)
    infra/lab/lab.py status   show the hosts, their state and the app addresses
    infra/lab/lab.py cut dr   drop traffic between the DR site and the DC (nftables on this host)
    infra/lab/lab.py heal     remove the cut
    infra/lab/lab.py remake dc --like dr   (or --suite trixie)
                              make one site's hosts anew on another release, the other site
                              running, and provision them as its standby site

The hosts run Debian 12 (bookworm, PostgreSQL 15) unless KNTC_LAB_SUITE says otherwise: `trixie`
for Debian 13 and its PostgreSQL 17 on both sites, or one suite per site (`dc=bookworm,dr=trixie`),
the shape of the site-by-site move of runbooks/upgrade-postgres.md.

Only the standard library is used, so that the script runs before the venv exists.
Everything generated (SSH key, CA, secrets, inventory vars, containers.conf) lives under
infra/lab/.state/, which git ignores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parent.parent
STATE = LAB_DIR / ".state"
ANSIBLE_DIR = REPO / "infra" / "ansible"
INVENTORY = ANSIBLE_DIR / "inventories" / "lab" / "hosts.yml"
VENV_BIN = REPO / ".venv" / "bin"

# The Debian mirror this host's apt uses: one reading of it for the lab's image and dr's Debian 13 root.
sys.path.insert(0, str(REPO))
from dr.newer_postgres import PG_MAJOR as NEWER_PG_MAJOR  # noqa: E402
from dr.newer_postgres import SUITE as NEWER_SUITE  # noqa: E402
from dr.newer_postgres import debian_mirror, sources_for  # noqa: E402

LAB_RANGE = "10.231.0.0/16"
SITES = {
    # site: (podman network, subnet, host-side gateway address)
    "dc": ("kntc-dc", "10.231.1.0/24", "10.231.1.254"),
    "dr": ("kntc-dr", "10.231.2.0/24", "10.231.2.254"),
}
# name: (site, address, tiers)
HOSTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # The DC's consensus runs on three small hosts of its own: a database host that dies takes no
    # etcd member with it, so the leader's key expires on a healthy quorum and the failover is
    # not held up by etcd's own election and dead-endpoint timeouts (runbooks/failover-in-dc.md).
    "dc-db1": ("dc", "10.231.1.11", ("database",)),
    "dc-db2": ("dc", "10.231.1.12", ("database",)),
    "dc-db3": ("dc", "10.231.1.13", ("database",)),
    "dc-etcd1": ("dc", "10.231.1.51", ("etcd",)),
    "dc-etcd2": ("dc", "10.231.1.52", ("etcd",)),
    "dc-etcd3": ("dc", "10.231.1.53", ("etcd",)),
    "dc-app1": ("dc", "10.231.1.21", ("balancer", "app")),
    "dc-app2": ("dc", "10.231.1.22", ("balancer", "app")),
    "dc-backup1": ("dc", "10.231.1.31", ("backup",)),
    "dr-db1": ("dr", "10.231.2.11", ("etcd", "database")),
    "dr-db2": ("dr", "10.231.2.12", ("etcd", "database")),
    "dr-app1": ("dr", "10.231.2.21", ("balancer", "app")),
    # The third etcd member of the DR site (an even count tolerates no more failures than one
    # fewer): the backup host is the witness, it runs no PostgreSQL.
    "dr-backup1": ("dr", "10.231.2.31", ("backup", "etcd")),
    # Each site's Prometheus and Alertmanager, watching both sites.
    "dc-mon1": ("dc", "10.231.1.41", ("monitoring",)),
    "dr-mon1": ("dr", "10.231.2.41", ("monitoring",)),
}
LABEL = "kntc-lab=1"



def postgres_version() -> int:
    """The database hosts' PostgreSQL major version: the inventory's (group_vars/all.yml) is the only say."""
    found = re.search(r"^kntc_postgres_version: (\d+)$", (ANSIBLE_DIR / "group_vars" / "all.yml").read_text(),
                      re.MULTILINE)
    if not found:
        sys.exit("lab: infra/ansible/group_vars/all.yml has no line `kntc_postgres_version: <major version>`")
    return int(found.group(1))


HOST_SUITE = "bookworm"
# Each Debian release carries one PostgreSQL major version: the inventory's for this host's own
# release, Debian 13's for trixie.
SUITE_POSTGRES = {HOST_SUITE: postgres_version(), NEWER_SUITE: NEWER_PG_MAJOR}


def site_suites(spec: str | None = None) -> dict[str, str]:
    """The Debian suite of each site's hosts, from KNTC_LAB_SUITE (`trixie`, or `dc=bookworm,dr=trixie`)."""
    spec = (os.environ.get("KNTC_LAB_SUITE", "") if spec is None else spec).strip()
    suites = dict.fromkeys(SITES, HOST_SUITE)
    if not spec:
        return suites
    if "=" not in spec:
        spec = ",".join(f"{site}={spec}" for site in SITES)
    for part in spec.split(","):
        site, _, suite = part.strip().partition("=")
        if site not in SITES or suite not in SUITE_POSTGRES:
            sys.exit(f"lab: KNTC_LAB_SUITE={spec!r}: give one of {sorted(SUITE_POSTGRES)}, "
                     f"or site=suite pairs for the sites {sorted(SITES)}")
        suites[site] = suite
    return suites


SUITES = site_suites()
# The DC's version: what the tests' PostgreSQL tools on the DC's hosts are.
PG_VERSION = SUITE_POSTGRES[SUITES["dc"]]


def image_packages(suite: str) -> list[str]:
    pg = SUITE_POSTGRES[suite]
    return [f"postgresql-{pg}", f"postgresql-client-{pg}", *IMAGE_PACKAGES]


# Everything the hosts need is installed into the image, so that lab hosts need no internet.
IMAGE_PACKAGES = [
    "patroni", "python3-etcd", "python3-psycopg2",
    "etcd-server", "etcd-client", "haproxy", "pgbackrest", "nginx", "python3-venv",
    "nftables", "chrony", "openssl", "curl", "acl", "python3-apt", "less", "netcat-openbsd", "iputils-ping",
    "prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-postgres-exporter",
    "python3-aiosmtpd", "prometheus-nginx-exporter", "prometheus-blackbox-exporter",
    # The app role's packages (app_packages): the font of the periodic reports' PDF.
    "fonts-dejavu-core",
    # The journal role: every host uploads its journal, the monitoring hosts receive.
    "systemd-journal-remote",
    # The pgbouncer role: the app hosts' connection pool.
    "pgbouncer",
]
BASE_INCLUDE = "systemd,systemd-sysv,dbus,openssh-server,python3,sudo,iproute2,ca-certificates,procps"
SERVICES_OFF = ["etcd", "haproxy", "nginx", "patroni", "postgresql", "chrony", "pgbackrest", "prometheus",
                "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-postgres-exporter",
                "prometheus-nginx-exporter", "prometheus-blackbox-exporter", "pgbouncer"]


def image_name(suite: str) -> str:
    spec = json.dumps([image_packages(suite), BASE_INCLUDE, SERVICES_OFF, 3], sort_keys=True)
    return f"localhost/kntc-lab:{suite}-" + hashlib.sha256(spec.encode()).hexdigest()[:10]


IMAGES = {site: image_name(suite) for site, suite in SUITES.items()}
# NET_ADMIN (scoped to the container's own network namespace) lets each host load its nftables
# firewall; this host's forward chain still drops any lab packet that is not for the lab range.
CAPS = "SYS_ADMIN,NET_ADMIN,NET_RAW,AUDIT_WRITE,SYS_NICE,IPC_LOCK"
# PostgreSQL's parallel workers and parallel VACUUM share memory through /dev/shm (dynamic shared
# memory, posix): Podman's 64 MB fails a VACUUM or a parallel report of a national-size table
# ("could not resize shared memory segment"), where a Debian host gives /dev/shm half its memory.
# A size, not a reservation: tmpfs uses memory only for what is written.
SHM_SIZE = "2g"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
"""

NFT_TABLE = "kntc_lab"


def log(msg: str) -> None:
    print(f"lab: {msg}", flush=True)


def run(cmd: list[str] | str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(STATE / "containers.conf"))
    env.update(kw.pop("env", {}))
    return subprocess.run(cmd, check=check, text=True, env=env, shell=isinstance(cmd, str),
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None, **kw)


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return run(["podman", *args], check=check, capture=capture)


# ---------------------------------------------------------------- state
def ensure_state() -> None:
    STATE.mkdir(mode=0o700, exist_ok=True)
    conf = STATE / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    key = STATE / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kntc-lab", "-f", str(key)])
    auth = STATE / "authorized_keys"
    auth.write_text((STATE / "id_ed25519.pub").read_text())
    auth.chmod(0o644)


# ---------------------------------------------------------------- image
def build_image(suite: str) -> None:
    image = image_name(suite)
    if podman("image", "exists", image, check=False).returncode == 0:
        log(f"image {image} cached")
        return
    t0 = time.monotonic()
    rootfs = STATE / "rootfs"
    base_tar = STATE / f"debootstrap-{suite}-minbase.tar"
    if rootfs.exists():
        unmount_chroot(rootfs)
        shutil.rmtree(rootfs)
    rootfs.mkdir()
    if base_tar.exists():
        log(f"reusing {base_tar.name}")
        run(["tar", "-C", str(rootfs), "-xf", str(base_tar)])
    else:
        log(f"debootstrap {suite} (minbase), about 80 s")
        run(["debootstrap", "--variant=minbase", f"--include={BASE_INCLUDE}", suite,
             str(rootfs), debian_mirror()], capture=True)
        run(["tar", "-C", str(rootfs), "-cf", str(base_tar), "."])
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    # apt inside the image: this host's mirrors, with the image's own suite
    for f in Path("/etc/apt/sources.list.d").glob("*.sources"):
        (rootfs / "etc/apt/sources.list.d" / f.name).write_text(sources_for(f, suite))
    for f in Path("/etc/apt/apt.conf.d").glob("99*"):
        shutil.copy(f, rootfs / "etc/apt/apt.conf.d" / f.name)
    (rootfs / "etc/postgresql-common").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/postgresql-common/createcluster.conf").write_text(
        "# Patroni creates and manages the clusters\ncreate_main_cluster = false\n")
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    log("installing the hosts' packages into the image")
    for m in ("proc", "sys", "dev", "dev/pts"):
        run(["mount", "--bind", f"/{m}", str(rootfs / m)])
    try:
        shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
        chroot = ["chroot", str(rootfs), "env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
        run([*chroot, "apt-get", "update", "-qq"], capture=True)
        run([*chroot, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *image_packages(suite)],
            capture=True)
        run([*chroot, "apt-get", "clean"])
    finally:
        unmount_chroot(rootfs)
    policy.unlink()
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    run(["chroot", str(rootfs), "systemctl", "disable", "--quiet", *SERVICES_OFF], check=False)
    run(["chroot", str(rootfs), "systemctl", "mask", "--quiet", "systemd-logind", "getty.target",
         "console-getty", "systemd-udevd", "systemd-udevd-kernel.socket",
         "systemd-udevd-control.socket"], check=False)
    # host keys are generated at first boot, not shared by every host of the image
    for k in (rootfs / "etc/ssh").glob("ssh_host_*"):
        k.unlink()
    unit = rootfs / "etc/systemd/system/ssh-hostkeys.service"
    unit.write_text("[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n\n"
                    "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
                    "[Install]\nWantedBy=multi-user.target\n")
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    link = wants / "ssh-hostkeys.service"
    if not link.exists():
        link.symlink_to("/etc/systemd/system/ssh-hostkeys.service")
    (rootfs / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (rootfs / "etc/ssh/sshd_config.d/lab.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    (rootfs / "etc/machine-id").write_text("")
    log("importing the image")
    run(f"tar -C {rootfs} -c . | podman import -q --change CMD=/sbin/init - {image} >/dev/null")
    shutil.rmtree(rootfs)
    log(f"image {image} built in {time.monotonic() - t0:.0f} s")


def unmount_chroot(rootfs: Path) -> None:
    for m in ("dev/pts", "dev", "sys", "proc"):
        p = rootfs / m
        if os.path.ismount(p):
            run(["umount", "-l", str(p)], check=False)


# ---------------------------------------------------------------- networks
def conflist(site: str) -> Path:
    return Path("/etc/cni/net.d") / f"{SITES[site][0]}.conflist"


def ensure_host_safety() -> None:
    """Blackhole the lab range and refuse to forward lab traffic anywhere but the lab."""
    routes = run(["ip", "route", "show", "type", "blackhole", LAB_RANGE], capture=True).stdout
    if LAB_RANGE not in routes:
        run(["ip", "route", "add", "blackhole", LAB_RANGE])
    rules = (
        f"table inet {NFT_TABLE} {{\n"
        "  set cut { type ipv4_addr . ipv4_addr; flags interval; }\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f"    ip saddr {LAB_RANGE} ip daddr != {LAB_RANGE} counter drop\n"
        f"    ip daddr {LAB_RANGE} ip saddr != {LAB_RANGE} counter drop\n"
        "    ip saddr . ip daddr @cut counter drop\n"
        "  }\n"
        "}\n"
    )
    if run(["nft", "list", "table", "inet", NFT_TABLE], check=False, capture=True).returncode != 0:
        run(["nft", "-f", "-"], input=rules)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")


def ensure_network(site: str) -> None:
    name, subnet, gateway = SITES[site]
    if podman("network", "exists", name, check=False).returncode != 0:
        podman("network", "create", "--internal", "--disable-dns", "--subnet", subnet,
               "--gateway", gateway, name)
    # An internal CNI network has no address on the host's bridge and no routes at all. Give the
    # bridge its gateway address and the hosts one route, to the lab range only: the sites reach
    # each other through this host, nothing is masqueraded, and there is no default route.
    path = conflist(site)
    conf = json.loads(path.read_text())
    bridge = conf["plugins"][0]
    want_ipam = {"type": "host-local",
                 "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                 "routes": [{"dst": LAB_RANGE, "gw": gateway}]}
    if not bridge.get("isGateway") or bridge.get("ipam") != want_ipam or bridge.get("ipMasq"):
        bridge["isGateway"] = True
        bridge["ipMasq"] = False
        bridge["ipam"] = want_ipam
        path.write_text(json.dumps(conf, indent=3))


def remove_networks() -> None:
    for name, _, _ in SITES.values():
        podman("network", "rm", "-f", name, check=False)


# ---------------------------------------------------------------- hosts
def container_state(name: str) -> str | None:
    r = podman("container", "inspect", "--format", "{{.State.Status}} {{.State.Pid}}", name, check=False)
    if r.returncode != 0:
        return None
    status, _, pid = r.stdout.strip().partition(" ")
    # A machine restored from a snapshot keeps Podman's records but not the processes: a host
    # recorded as running whose init is gone is "stale", and Podman can neither stop nor start it.
    if status in ("running", "stopping") and not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
        return "stale"
    return status


def remove_container(name: str, tries: int = 3) -> None:
    """`podman rm -f`, again after a pause if it fails: a container caught between stopping and
    stopped answers "container state improper" once, and is removed on the next try."""
    for attempt in range(1, tries + 1):
        res = podman("rm", "-f", "-t", "2", name, check=attempt == tries)
        if res.returncode == 0:
            return
        log(f"{name}: podman rm failed ({res.stderr.strip()[:160]}), trying again")
        time.sleep(3)


def start_host(name: str) -> None:
    site, addr, _ = HOSTS[name]
    state = container_state(name)
    # A host made by another checkout (another state folder, another SSH key, CA and secrets)
    # cannot be provisioned by this one: recreate it rather than reuse it.
    owner = f"{STATE.resolve()} {(STATE / 'id_ed25519.pub').read_text().strip()}"
    made_of = f"{IMAGES[site]} {CAPS} {SHM_SIZE} {site} {addr} {sorted(HOSTS)} {owner}"
    spec = hashlib.sha256(made_of.encode()).hexdigest()[:12]
    if state is not None:
        have = podman("container", "inspect", "--format", '{{index .Config.Labels "kntc-lab-spec"}}',
                      name).stdout.strip()
        if have != spec or state == "stale":
            why = ("its processes are gone (a restored machine)" if state == "stale"
                   else "made from an older image or settings")
            log(f"{name}: {why}, recreating")
            remove_container(name)
            (STATE / "provisioned").unlink(missing_ok=True)
            state = None
        elif state == "running":
            return
        else:
            log(f"{name}: {state}, starting again")
            podman("start", name)
            return
    # Ansible's fact cache outlives a host: a host made anew (perhaps on another Debian release)
    # must not be provisioned from the facts of the one before.
    (STATE / "ansible-facts" / name).unlink(missing_ok=True)
    add_hosts = [f"--add-host={h}:{a}" for h, (_, a, _) in HOSTS.items() if h != name]
    podman(
        "run", "-d", "--name", name, "--hostname", name, "--label", LABEL, "--label", f"kntc-lab-spec={spec}",
        "--network", SITES[site][0], "--ip", addr, *add_hosts,
        "--systemd=always", "--cap-add", CAPS, "--shm-size", SHM_SIZE, "--stop-timeout", "5",
        "-v", f"{STATE / 'authorized_keys'}:/root/.ssh/authorized_keys:ro",
        IMAGES[site], "/sbin/init",
    )


# Podman puts every host's control group under one parent, and the kernel weighs a group as one task
# against each process beside it: next to a test session's PostgreSQL, app and load processes, the
# fifteen hosts together got the share of one of them. The parent gets the weight of this many.
LAB_CPU_WEIGHT = 4
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_weight_file(proc_cgroup: str, root: Path = CGROUP_ROOT) -> tuple[Path, int] | None:
    """The file that weighs the hosts' parent group and the value for LAB_CPU_WEIGHT processes, from a
    host's /proc/<pid>/cgroup: cgroup v1's cpu.shares (1024 a process) where the cpu controller is on
    a v1 hierarchy (this machine's hybrid layout), else v2's cpu.weight (100 a process)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            mount = next((m for m in (root / controllers, root / "cpu,cpuacct", root / "cpu") if m.is_dir()), None)
            return ((mount / path.strip("/")).parent / "cpu.shares", 1024 * LAB_CPU_WEIGHT) if mount else None
    v2 = next((line.split(":", 2)[2] for line in proc_cgroup.splitlines() if line.startswith("0::")), None)
    if v2 is None:
        return None
    group = (root / v2.strip("/")).parent
    # systemd inside the container puts its init in init.scope below the container's own group.
    if group.name.startswith("libpod-"):
        group = group.parent
    return group / "cpu.weight", 100 * LAB_CPU_WEIGHT


def favour_lab_cpu() -> None:
    """Weigh the hosts' parent control group as LAB_CPU_WEIGHT processes (see above); a machine that
    does not let this process change it keeps the default, with one line saying so."""
    for name in HOSTS:
        pid = podman("container", "inspect", "--format", "{{.State.Pid}}", name, check=False).stdout.strip()
        if pid.isdigit() and pid != "0" and Path(f"/proc/{pid}/cgroup").exists():
            break
    else:
        log("lab: no host runs: their CPU weight is left as it is")
        return
    found = cpu_weight_file(Path(f"/proc/{pid}/cgroup").read_text())
    if found is None:
        log("lab: no CPU control group found for the hosts: they keep the default weight")
        return
    path, value = found
    try:
        if path.read_text().strip() != str(value):
            path.write_text(f"{value}\n")
    except OSError as exc:
        log(f"lab: the hosts keep the default CPU weight ({path}: {exc.strerror})")


def record_host_keys(deadline_s: float = 60) -> None:
    """Write .state/known_hosts from each host's own public keys, read through Podman.

    Each host makes its keys at first boot; reading them over `podman exec` (not over the network)
    is the trusted channel, so SSH and Ansible check every host key strictly and a host that
    answers with another key is refused.
    """
    end = time.monotonic() + deadline_s
    lines: list[str] = []
    for name, (_, addr, _) in HOSTS.items():
        while True:
            r = podman("exec", name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub", check=False)
            keys = [ln.split()[:2] for ln in r.stdout.splitlines() if len(ln.split()) >= 2]
            if r.returncode == 0 and any(k[0] == "ssh-ed25519" for k in keys):
                break
            if time.monotonic() > end:
                sys.exit(f"lab: {name} has no SSH host key after {deadline_s:.0f} seconds")
            time.sleep(0.5)
        lines += [f"{addr} {kind} {key}" for kind, key in keys]
    text = "\n".join(lines) + "\n"
    known = STATE / "known_hosts"
    if not known.exists() or known.read_text() != text:
        known.write_text(text)


def wait_ssh(deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    pending = set(HOSTS)
    while pending and time.monotonic() < end:
        for name in sorted(pending):
            r = run(ssh_cmd(name, "true"), check=False, capture=True)
            if r.returncode == 0:
                pending.discard(name)
        if pending:
            time.sleep(0.5)
    if pending:
        sys.exit(f"lab: no SSH on {', '.join(sorted(pending))} after {deadline_s:.0f} seconds")


def ssh_cmd(name: str, command: str) -> list[str]:
    return ["ssh", "-i", str(STATE / "id_ed25519"), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}",
            "-o", "LogLevel=ERROR",
            f"root@{HOSTS[name][1]}", command]


# ---------------------------------------------------------------- inventory
PRIMARY_SITE = "dc"  # group_vars/all.yml's kntc_primary_site


def site_host_vars(suites: dict[str, str]) -> dict[str, dict[str, object]]:
    """Each site's host variables beyond the playbook's group_vars.

    A site on another Debian release runs that release's PostgreSQL. A site whose major version is
    not the primary site's cannot follow it physically: it is a cluster of its own, empty, that the
    major upgrade fills by logical replication (runbooks/upgrade-postgres.md, the DR first), and
    both sites are provisioned as that runbook's "Before" asks: both publish (`wal_level =
    logical`: the old site first, the new one after the cut-over, as the way back), each admits the
    replication role `kntc_upgrade` from its own balancers (the other site's subscriber arrives
    through their replication port), and the old one the new site's backup host, which runs the
    steps, as the superuser. Each site keeps to its own pgBackRest repository meanwhile."""
    def addresses(site: str, tier: str) -> list[str]:
        return [addr for s, addr, tiers in HOSTS.values() if s == site and tier in tiers]

    out: dict[str, dict[str, object]] = {site: {} for site in suites}
    primary_pg = SUITE_POSTGRES[suites[PRIMARY_SITE]]
    moving = [site for site, suite in suites.items() if SUITE_POSTGRES[suite] != primary_pg]
    for site, suite in suites.items():
        if suite != HOST_SUITE:
            out[site]["kntc_postgres_version"] = SUITE_POSTGRES[suite]
    for site in moving:
        out[site]["patroni_is_standby_cluster"] = False
        # after the cut-over the new site publishes to the old one: the way back
        out[site]["patroni_postgresql_parameters_extra"] = {"wal_level": "logical"}
        out[site]["patroni_pg_hba_extra"] = [f"hostssl kntc kntc_upgrade {a}/32 scram-sha-256"
                                             for a in addresses(site, "balancer")]
    if moving:
        # pgBackRest's protocol wants one version at both ends, and each release carries its own:
        # while the sites differ, each archives into and backs up from its own repository only.
        for site in suites:
            out[site]["pgbackrest_remote_repo_enabled"] = False
        out[PRIMARY_SITE]["patroni_postgresql_parameters_extra"] = {"wal_level": "logical"}
        out[PRIMARY_SITE]["patroni_pg_hba_extra"] = (
            [f"hostssl kntc kntc_upgrade {a}/32 scram-sha-256" for a in addresses(PRIMARY_SITE, "balancer")]
            + [f"hostssl kntc postgres {a}/32 scram-sha-256" for site in moving for a in addresses(site, "backup")])
    return out


def write_inventory() -> None:
    groups: dict[str, list[str]] = {}
    for name, (site, _, tiers) in HOSTS.items():
        groups.setdefault(site, []).append(name)
        for t in tiers:
            groups.setdefault(t, []).append(name)
    lines = [
        "# Generated by infra/lab/lab.py: the lab's hosts. Do not edit; edit HOSTS in lab.py.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {STATE / 'id_ed25519'}",
        f"    ansible_ssh_common_args: -o StrictHostKeyChecking=yes -o UserKnownHostsFile={STATE / 'known_hosts'}"
        " -o LogLevel=ERROR",
        "  hosts:",
    ]
    extra = site_host_vars(SUITES)
    for name, (site, addr, _) in HOSTS.items():
        lines += [f"    {name}:", f"      ansible_host: {addr}"]
        # A host's own vars outrank the playbook's group_vars (JSON is YAML, on one line).
        lines += [f"      {key}: {json.dumps(value)}" for key, value in extra[site].items()]
    lines.append("  children:")
    for g in ("dc", "dr", "etcd", "database", "balancer", "app", "backup", "monitoring"):
        lines.append(f"    {g}:")
        lines.append("      hosts:")
        lines += [f"        {h}:" for h in groups[g]]
    text = "\n".join(lines) + "\n"
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    if not INVENTORY.exists() or INVENTORY.read_text() != text:
        INVENTORY.write_text(text)


PROFILED = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles,ansible.posix.profile_tasks",
            "PROFILE_ROLES_SUMMARY_ONLY": "true", "PROFILE_TASKS_SUMMARY_ONLY": "true",
            "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "30"}


def provision(extra: list[str], book: str = "site.yml") -> None:
    playbook = VENV_BIN / "ansible-playbook"
    if not playbook.exists():
        sys.exit("lab: .venv/bin/ansible-playbook missing: run `KNTC_WITH_LAB=1 infra/host/install-deps.sh`")
    marker = STATE / "provisioned"
    marker.unlink(missing_ok=True)
    log(f"provisioning: ansible-playbook -i inventories/lab {book} {' '.join(extra)}".rstrip())
    t0 = time.monotonic()
    # The time of each role and of the slowest tasks, after the recap: what a bring-up spent, read
    # from its own log (test-output/lab-up.log in a test run). Only here: the tests' own playbook
    # runs keep ansible's plain output, which they read.
    r = run([str(playbook), "-i", "inventories/lab", book, *extra], check=False, cwd=ANSIBLE_DIR, env=PROFILED)
    if r.returncode != 0:
        sys.exit(f"lab: {book} failed (exit {r.returncode})")
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    log(f"{book} took {time.monotonic() - t0:.0f} s")


# ---------------------------------------------------------------- commands
def lab_memory_mib() -> float:
    r = podman("stats", "--no-stream", "--no-reset", "--format", "{{.Name}} {{.MemUsage}}", check=False)
    total = 0.0
    units = {"b": 1 / 2**20, "kb": 1 / 1024, "kib": 1 / 1024, "mb": 1, "mib": 1, "gb": 1024, "gib": 1024}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] not in HOSTS:
            continue
        used = parts[1]
        num = "".join(c for c in used if c.isdigit() or c == ".")
        unit = used[len(num):].lower()
        total += float(num) * units.get(unit, 1)
    return total


def cmd_up(args: argparse.Namespace) -> None:
    t0 = time.monotonic()
    ensure_state()
    for suite in sorted(set(SUITES.values())):
        build_image(suite)
    ensure_host_safety()
    for site in SITES:
        ensure_network(site)
    for name in HOSTS:
        start_host(name)
    favour_lab_cpu()
    record_host_keys()
    wait_ssh()
    log(f"{len(HOSTS)} hosts answer SSH after {time.monotonic() - t0:.1f} s")
    write_inventory()
    if not args.no_provision:
        provision(args.ansible_args)
    print_summary(t0)


def running_suites() -> dict[str, str]:
    """The Debian release of each site whose hosts exist, from the image they were made of."""
    out: dict[str, str] = {}
    for name, (site, _, _) in HOSTS.items():
        if site in out:
            continue
        r = podman("container", "inspect", "--format", "{{.ImageName}}", name, check=False)
        found = re.search(r"kntc-lab:([a-z]+)-", r.stdout)
        if r.returncode == 0 and found and found.group(1) in SUITE_POSTGRES:
            out[site] = found.group(1)
    return out


def remake_extra_vars(site: str, primary: str) -> str:
    """What `provision_site.yml` is given for a site made anew beside a running primary site: only
    that site, as a standby cluster of `primary` (its Patroni bootstraps by a base backup through
    the primary site's balancers), and no repository across sites yet, since the primary site's
    hosts were provisioned without one; `site.yml` on the whole inventory joins them afterwards."""
    return json.dumps({"provision_site": site, "kntc_primary_site": primary,
                       "pgbackrest_remote_repo_enabled": False})


def remake_refusal(site: str, states: dict[str, str | None]) -> str | None:
    """Why `remake SITE` cannot start, from each host's container state: the other site is what the
    remade one follows, so every host of it must run; None when it may."""
    other = [name for name, (s, _, _) in HOSTS.items() if s != site]
    down = [name for name in other if states.get(name) != "running"]
    if down:
        return (f"lab: remake {site}: the other site's hosts must run ({', '.join(down)} "
                f"{'is' if len(down) == 1 else 'are'} not): `lab.py up` first")
    return None


def cmd_remake(args: argparse.Namespace) -> None:
    """Make one site's hosts anew, from the image of another Debian release, while the other runs:
    the lab's way of reinstalling a site's machines (the second half of a move to a new release)."""
    site = args.site
    primary = next(s for s in SITES if s != site)
    t0 = time.monotonic()
    ensure_state()
    refusal = remake_refusal(site, {name: container_state(name) for name in HOSTS})
    if refusal:
        sys.exit(refusal)
    # The inventory written below must describe the running site as it is, whatever this shell's
    # KNTC_LAB_SUITE says: each site's release is read from the image its hosts run.
    SUITES.update(running_suites())
    suite = args.suite or SUITES[args.like]
    build_image(suite)
    ensure_host_safety()
    ensure_network(site)
    SUITES[site] = suite
    IMAGES.update({s: image_name(v) for s, v in SUITES.items()})
    names = [name for name, (s, _, _) in HOSTS.items() if s == site]
    for name in names:
        if container_state(name) is not None:
            remove_container(name)
    (STATE / "provisioned").unlink(missing_ok=True)
    for name in names:
        start_host(name)
    favour_lab_cpu()
    record_host_keys()
    wait_ssh()
    write_inventory()
    log(f"{site}: {len(names)} hosts made anew on {suite} in {time.monotonic() - t0:.1f} s; the inventory says "
        + ", ".join(f"{s}={v}" for s, v in SUITES.items()))
    if not args.no_provision:
        provision(["-e", remake_extra_vars(site, primary)], book="provision_site.yml")
    print_summary(t0)


def print_summary(t0: float | None = None) -> None:
    print("lab: DC app  https://10.231.1.21/  https://10.231.1.22/")
    print("lab: DR app  https://10.231.2.21/")
    print(f"lab: CA certificate {STATE / 'pki' / 'ca.crt'}")
    if t0 is not None:
        print(f"lab: elapsed {time.monotonic() - t0:.1f} s")
    print(f"lab: memory used by the lab hosts {lab_memory_mib():.0f} MiB")


def cmd_down(_: argparse.Namespace) -> None:
    ensure_state()
    r = podman("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}")
    names = r.stdout.split()
    # A systemd container that is still shutting down can make `podman rm` fail once: try again.
    for attempt in range(3):
        left = [n for n in names if container_state(n) is not None]
        if not left:
            break
        res = podman("rm", "-f", "-t", "2", *left, check=False)
        if res.returncode != 0 and attempt == 2:
            last = (res.stderr.strip().splitlines() or ["podman rm failed"])[-1]
            sys.exit(f"lab: could not remove {', '.join(left)}: {last}")
    remove_networks()
    run(["nft", "delete", "table", "inet", NFT_TABLE], check=False, capture=True)
    log(f"removed {len(names)} containers and the lab networks (images {', '.join(sorted(set(IMAGES.values())))} kept)")


def cmd_status(_: argparse.Namespace) -> None:
    ensure_state()
    for name, (site, addr, tiers) in HOSTS.items():
        print(f"{name:<11} {site}  {addr:<12} {container_state(name) or 'absent':<8} {','.join(tiers)}")
    cut = run(["nft", "list", "set", "inet", NFT_TABLE, "cut"], check=False, capture=True).stdout
    print("sites cut" if "elements" in cut else "sites connected")
    print_summary()


def cmd_cut(args: argparse.Namespace) -> None:
    ensure_host_safety()
    a, b = SITES["dc"][1], SITES["dr"][1]
    run(["nft", "add", "element", "inet", NFT_TABLE, "cut", f"{{ {a} . {b}, {b} . {a} }}"])
    log(f"traffic between {a} and {b} is dropped")


def cmd_heal(_: argparse.Namespace) -> None:
    run(["nft", "flush", "set", "inet", NFT_TABLE, "cut"], check=False)
    log("sites connected again")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("lab: run as root (podman with systemd containers, nftables, routes)")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build, start and provision the lab")
    up.add_argument("--no-provision", action="store_true", help="start the hosts only")
    up.add_argument("ansible_args", nargs="*", help="extra ansible-playbook arguments (after --)")
    up.set_defaults(fn=cmd_up)
    remake = sub.add_parser("remake", help="make one site's hosts anew on a Debian release, the other site running")
    remake.add_argument("site", choices=sorted(SITES))
    release = remake.add_mutually_exclusive_group(required=True)
    release.add_argument("--suite", choices=sorted(SUITE_POSTGRES), help="the Debian release to make them of")
    release.add_argument("--like", choices=sorted(SITES), help="the release the hosts of this site run")
    remake.add_argument("--no-provision", action="store_true",
                        help="make the hosts and the inventory only (the runbook provisions them)")
    remake.set_defaults(fn=cmd_remake)
    sub.add_parser("down", help="remove the lab").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="show the lab").set_defaults(fn=cmd_status)
    cut = sub.add_parser("cut", help="cut the DR site off the DC")
    cut.add_argument("site", choices=["dr"])
    cut.set_defaults(fn=cmd_cut)
    sub.add_parser("heal", help="undo `cut`").set_defaults(fn=cmd_heal)
    args = p.parse_args()
    try:
        args.fn(args)
    except subprocess.CalledProcessError as exc:
        cmd = exc.cmd if isinstance(exc.cmd, str) else " ".join(map(str, exc.cmd))
        detail = (exc.stderr or "").strip().splitlines()[-1:] if isinstance(exc.stderr, str) else []
        sys.exit(f"lab: `{cmd[:200]}` exited {exc.returncode}" + (f": {detail[0]}" if detail else ""))


if __name__ == "__main__":
    main()
