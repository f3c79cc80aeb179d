"""PostgreSQL 17 from Debian 13 (trixie) on this Debian 12 host, for rehearsing the 15 → 17 upgrade.

Debian 12 carries PostgreSQL 15 only, and the new site runs Debian 13's own 17 package: rather than
a build from source or another vendor's package, the 17 used here comes from a Debian 13 root
filesystem (debootstrap, minbase) kept under a cache folder, and its clusters run chrooted in it.

Nothing the root needs is mounted on the host: every process that enters the root does so in a
private mount namespace of its own, where /proc and a minimal /dev are mounted, so an interrupted
build or a server that stops leaves no mount behind (the namespace ends with its last process).
The network is the host's: a chrooted 17 reaches a 15 on 127.0.0.1 and the other way round, as
logical replication between them needs.

The root's `postgres` user has the root's own uid (not necessarily the host's), so the files of a
cluster are owned by that number and tarballs keep numeric owners.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dr.errors import DrError, PostgresError, one_line

SUITE = "trixie"
PG_MAJOR = 17
PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-client-{PG_MAJOR}")
# Bumped whenever the way the root is built changes, so that an old tarball is not reused.
RECIPE = 1
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
MARKER = ".newer-postgres-complete"

BUILD_TIMEOUT = 1800.0
TAR_TIMEOUT = 600.0
LOCK_TIMEOUT = BUILD_TIMEOUT * 2

# The host's apt sources name its own suite; the root's must name trixie's suites with the same
# mirrors (the only registry this host may reach).
_HOST_SUITE = re.compile(r"\bbookworm\b")

# Run as `sh -ec SCRIPT newer-postgres ROOT [ARGS...] COMMAND...` inside `unshare --mount`.
# What apt and the maintainer scripts expect of a system: /proc, a read-only /sys, the host's /dev.
_BUILD_NAMESPACE = """
root=$1; shift
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
exec chroot "$root" "$@"
"""
# What PostgreSQL needs and no more: pg_ctl and initdb redirect to /dev/null, the server's random
# numbers and posix dynamic shared memory (/dev/shm, a tmpfs of this namespace alone, so segments
# never pile up in the host's), /proc for huge page and memory facts.
_SERVER_NAMESPACE = """
root=$1; uid=$2; gid=$3; shift 3
mount -t tmpfs -o mode=0755,nosuid,size=64k newer-postgres-dev "$root/dev"
for node in null zero full random urandom; do
    : > "$root/dev/$node"
    mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev,noexec newer-postgres-shm "$root/dev/shm"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
exec chroot --userspec="$uid:$gid" "$root" "$@"
"""
_PRIVATE = ["unshare", "--mount", "--propagation", "private", "--"]
# The build's programs fork (dpkg, apt's fetchers, maintainer scripts): in a pid namespace whose first
# process dies with unshare, a timeout or an interrupt that kills unshare ends all of them.
_PRIVATE_TREE = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--"]
_ROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def say(message: str) -> None:
    print(f"newer-postgres: {message}", file=sys.stderr, flush=True)


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (the first URIs of debian.sources): the lab's image and
    this root are built from it."""
    src = Path("/etc/apt/sources.list.d/debian.sources")
    if src.exists():
        for line in src.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


def sources_for(src: Path, suite: str) -> str:
    """One of this host's apt sources files with its suites renamed for `suite` (same mirrors)."""
    return "\n".join(_HOST_SUITE.sub(suite, ln) if ln.startswith("Suites:") else ln
                     for ln in src.read_text().splitlines()) + "\n"


def root_key() -> str:
    return hashlib.sha256(json.dumps([SUITE, sorted(PACKAGES), RECIPE]).encode()).hexdigest()[:12]


def _need_root() -> None:
    if os.geteuid() != 0:
        raise DrError("cần quyền root / must run as root: debootstrap, chroot and mount namespaces need it")


def _run(argv: Sequence[str], *, timeout: float, what: str, env: Mapping[str, str] | None = None,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        # From "/": a chrooted user must not inherit a working directory it cannot reach.
        return subprocess.run(list(argv), text=True, capture_output=True, timeout=timeout, input=input,
                              env=dict(env) if env is not None else None, cwd="/", check=False)
    except subprocess.TimeoutExpired as exc:
        raise DrError(f"{what}: quá thời gian / timed out after {timeout:.0f} s") from exc


def _checked(res: subprocess.CompletedProcess[str], what: str) -> None:
    if res.returncode != 0:
        lines = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise DrError(f"{what} thất bại / failed (exit {res.returncode}): {one_line(' '.join(lines[-4:]))}")


@contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    """One builder per cache folder: parallel test sessions wait for the first one's root."""
    with path.open("a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DrError(f"{path} vẫn bị khoá / still locked after {timeout:.0f} s by another "
                                  "build") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _in_build_root(root: Path, argv: Sequence[str], *, timeout: float, what: str) -> None:
    env = {"PATH": _ROOT_PATH, "LANG": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive"}
    res = _run([*_PRIVATE_TREE, "sh", "-ec", _BUILD_NAMESPACE, "newer-postgres", str(root), *argv],
               timeout=timeout, what=what, env=env)
    _checked(res, what)


def _configure_apt(root: Path) -> None:
    """apt in the root uses this host's mirrors and settings; no cluster is made and no service is
    started by the packages (the clusters are made by `Cluster.init`, in folders of our choosing)."""
    (root / "etc/apt/sources.list").unlink(missing_ok=True)  # debootstrap's one line; the .sources say it all
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        (root / "etc/apt/sources.list.d" / src.name).write_text(sources_for(src, SUITE))
    for conf in sorted(Path("/etc/apt/apt.conf.d").glob("99*")):
        shutil.copyfile(conf, root / "etc/apt/apt.conf.d" / conf.name)
    common = root / "etc/postgresql-common"
    common.mkdir(parents=True, exist_ok=True)
    (common / "createcluster.conf").write_text("create_main_cluster = false\n")
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def _build(staged: Path) -> None:
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not debootstrap:
        raise DrError("không có debootstrap / debootstrap is missing: apt-get install debootstrap")
    mirror = debian_mirror()
    t0 = time.monotonic()
    say(f"debootstrap {SUITE} (minbase) from {mirror}, about a minute with the install")
    # In a namespace of its own: debootstrap mounts /proc and /sys in the target, and an interrupted
    # run would leave them mounted on the host.
    res = _run([*_PRIVATE_TREE, debootstrap, "--variant=minbase", SUITE, str(staged), mirror], timeout=BUILD_TIMEOUT,
               what="debootstrap")
    if res.returncode != 0:
        errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("E:")] or \
            (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise DrError(f"debootstrap {SUITE} thất bại / failed (mirror {mirror}): {one_line(' '.join(errors))}")
    say(f"debootstrap done in {time.monotonic() - t0:.0f} s; installing {' '.join(PACKAGES)}")
    _configure_apt(staged)
    apt = ["apt-get", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
    _in_build_root(staged, [*apt, "update"], timeout=BUILD_TIMEOUT, what=f"apt-get update ({SUITE})")
    _in_build_root(staged, [*apt, "install", "-y", "--no-install-recommends", *PACKAGES], timeout=BUILD_TIMEOUT,
                   what=f"apt-get install {' '.join(PACKAGES)}")
    _in_build_root(staged, [*apt, "clean"], timeout=120, what="apt-get clean")
    # The package lists would only go stale in the tarball: more packages make a new recipe (PACKAGES,
    # RECIPE), which is a new build with fresh lists.
    for lists in (staged / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()
    (staged / "usr/sbin/policy-rc.d").unlink()
    (staged / "srv").mkdir(exist_ok=True)


def ensure_root(cache_dir: Path) -> Path:
    """The Debian 13 root with PostgreSQL 17 under `cache_dir`, built (or unpacked from the cached
    tarball) on first use; later calls return it at once."""
    _need_root()
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = root_key()
    name = f"debian13-postgresql{PG_MAJOR}"
    root = cache_dir / f"{name}-{key}"
    tarball = cache_dir / f"{name}-{key}.tar"
    if (root / MARKER).is_file():
        return root
    with _locked(cache_dir / f".{name}.lock", LOCK_TIMEOUT):
        if (root / MARKER).is_file():  # built by whoever held the lock before us
            return root
        # Leftovers of an interrupted build or unpack: nothing of them is mounted (namespaces) and
        # nobody else builds while we hold the lock.
        for partial in [*cache_dir.glob(f".{name}-build-*"), *([root] if root.exists() else [])]:
            say(f"removing the incomplete {partial.name}")
            shutil.rmtree(partial)
        work = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=cache_dir))
        try:
            staged = work / "root"
            staged.mkdir(mode=0o755)
            t0 = time.monotonic()
            if tarball.is_file():
                say(f"unpacking {tarball.name}")
                # Numeric owners: the root's users are not the host's (its postgres is not ours).
                _checked(_run(["tar", "-C", str(staged), "--numeric-owner", "-xpf", str(tarball)],
                              timeout=TAR_TIMEOUT, what="tar -x"), f"tar -x {tarball.name}")
            else:
                _build(staged)
                partial_tar = work / tarball.name
                _checked(_run(["tar", "-C", str(staged), "--numeric-owner", "-cf", str(partial_tar), "."],
                              timeout=TAR_TIMEOUT, what="tar -c"), f"tar -c {tarball.name}")
                partial_tar.rename(tarball)
            (staged / MARKER).write_text(key + "\n")
            staged.rename(root)
            say(f"{root.name} ready in {time.monotonic() - t0:.0f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return root


def _postgres_ids(root: Path) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "postgres":
            return int(fields[2]), int(fields[3])
    raise DrError(f"{root} không có người dùng postgres / has no postgres user: remove it to rebuild")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PG_HBA = """\
# newer-postgres: the superuser locally by peer, everyone (replication too) over loopback TCP by password
local   all          all                    peer
host    all          all      127.0.0.1/32  scram-sha-256
local   replication  all                    peer
host    replication  all      127.0.0.1/32  scram-sha-256
"""


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL 17 cluster in `<root>/srv/<name>` (data/, socket/, postgresql.log), listening on
    127.0.0.1:`port` and on the socket folder, run chrooted in the root as the root's postgres."""

    root: Path
    name: str
    port: int

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"cluster name {self.name!r}: letters, digits, '_', '.', '-' only")

    # Paths as the chrooted programs see them, and as the host does.
    @property
    def inner_home(self) -> str:
        return f"/srv/{self.name}"

    @property
    def home(self) -> Path:
        return self.root / "srv" / self.name

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgresql.log"

    def _in_root(self, argv: Sequence[str], *, timeout: float, what: str, input: str | None = None,
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        _need_root()
        uid, gid = _postgres_ids(self.root)
        base = {"PATH": f"{PG_BIN}:{_ROOT_PATH}", "LANG": "C.UTF-8", "HOME": "/var/lib/postgresql",
                "USER": "postgres", "LOGNAME": "postgres", "PGHOST": f"{self.inner_home}/socket",
                "PGPORT": str(self.port), "PGUSER": "postgres"}
        cmd = [*_PRIVATE, "sh", "-ec", _SERVER_NAMESPACE, "newer-postgres", str(self.root), str(uid), str(gid),
               *argv]
        try:
            return _run(cmd, timeout=timeout, what=what, env={**base, **(env or {})}, input=input)
        except DrError as exc:
            raise PostgresError(str(exc)) from exc

    def log_tail(self, chars: int = 600) -> str:
        try:
            return one_line(self.log_file.read_text(errors="replace")[-chars:])
        except FileNotFoundError:
            return "(no log)"

    def init(self, superuser_password: str, settings: Mapping[str, str]) -> None:
        """initdb, then `settings` (values quoted for postgresql.conf here) after the port and
        addresses, so that they may override anything but those."""
        if "\n" in superuser_password or not superuser_password:
            raise ValueError("the superuser password must be one non-empty line")
        if (self.datadir / "PG_VERSION").exists():
            raise PostgresError(f"{self.datadir} đã có cụm / already holds a cluster")
        uid, gid = _postgres_ids(self.root)
        for folder, mode in ((self.home, 0o700), (self.home / "socket", 0o750)):
            folder.mkdir(mode=mode, exist_ok=True)
            folder.chmod(mode)
            os.chown(folder, uid, gid)
        pwfile = self.home / ".pwfile"
        try:
            # initdb reads the password from a file only postgres can read: never on a command line.
            with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                os.fchown(f.fileno(), uid, gid)
                f.write(superuser_password + "\n")
            res = self._in_root([f"{PG_BIN}/initdb", "-D", f"{self.inner_home}/data", "--data-checksums",
                                 "--encoding=UTF8", "--locale=C.UTF-8", "--auth-local=peer",
                                 "--auth-host=scram-sha-256", "--username=postgres",
                                 f"--pwfile={self.inner_home}/.pwfile"], timeout=300, what="initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise PostgresError(f"initdb ({self.datadir}) thất bại / failed: {one_line(res.stderr or res.stdout)}")
        lines = {"port": str(self.port), "listen_addresses": "127.0.0.1",
                 "unix_socket_directories": f"{self.inner_home}/socket", **settings}
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# newer-postgres\n" + "".join(f"{k} = {_quoted(v)}\n" for k, v in lines.items()))
        # Written out rather than initdb's: what the rehearsal relies on is said here.
        (self.datadir / "pg_hba.conf").write_text(_PG_HBA)

    def pid(self) -> int | None:
        """The postmaster's pid (the host's: no pid namespace), if one runs for this data folder."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (FileNotFoundError, ValueError):
            return None
        # A stale file whose pid was reused by something else is not a running cluster.
        return pid if comm == "postgres" else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 60) -> None:
        """Start in the background: the server outlives the caller (pg_ctl detaches it) and keeps its
        mount namespace alive, which ends when the server stops."""
        if self.is_running():
            return
        res = self._in_root([f"{PG_BIN}/pg_ctl", "start", "-D", f"{self.inner_home}/data", "-l",
                             f"{self.inner_home}/postgresql.log", "-w", "-t", str(int(timeout)), "-s"],
                            timeout=timeout + 30, what="pg_ctl start")
        if res.returncode != 0:
            raise PostgresError(f"PostgreSQL {PG_MAJOR} ({self.name}, port {self.port}) không khởi động / did not "
                                f"start: {one_line(res.stderr)[-300:]} {self.log_tail()}")

    def stop(self, timeout: float = 60) -> None:
        pid = self.pid()
        if pid is None:
            return
        res = self._in_root([f"{PG_BIN}/pg_ctl", "stop", "-D", f"{self.inner_home}/data", "-m", "fast", "-w",
                             "-t", str(int(timeout)), "-s"], timeout=timeout + 30, what="pg_ctl stop")
        if res.returncode != 0:
            raise PostgresError(f"PostgreSQL {PG_MAJOR} ({self.name}) không dừng / did not stop: "
                                f"{one_line(res.stderr)}")
        # pg_ctl returns once postmaster.pid is gone, a moment before the process (and with it the
        # namespace and its mounts) is.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL {PG_MAJOR} ({self.name}): process {pid} still there 10 s after "
                                    "pg_ctl stop")
            time.sleep(0.05)

    def run(self, binary: str, *args: str, input: str | None = None, timeout: float,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """One of PostgreSQL 17's programs (pg_dump, pg_dumpall, psql, pg_restore...) in the root as
        postgres; PGHOST/PGPORT/PGUSER name this cluster's socket, so peer authentication needs no
        password. Output is text: an archive format goes to a file under `inner_home` (-f)."""
        if "/" in binary or not (self.root / PG_BIN.lstrip("/") / binary).is_file():
            raise ValueError(f"{binary!r} is not a program of PostgreSQL {PG_MAJOR}")
        return self._in_root([f"{PG_BIN}/{binary}", *args], timeout=timeout, what=binary, input=input, env=env)

    def programs(self, folder: Path, names: Sequence[str]) -> Path:
        """Scripts in `folder`, one per program of 17 named, each running it in the root as `run`
        does (a clean environment but for PGPASSWORD): a command written for a host with 17
        installed (`kntc-dr upgrade prepare --pg-bin`) runs here as written."""
        uid, gid = _postgres_ids(self.root)
        folder.mkdir(parents=True, exist_ok=True)
        namespace = folder / ".newer-postgres-namespace.sh"
        namespace.write_text(_SERVER_NAMESPACE)
        for name in names:
            if "/" in name or not (self.root / PG_BIN.lstrip("/") / name).is_file():
                raise ValueError(f"{name!r} is not a program of PostgreSQL {PG_MAJOR}")
            script = folder / name
            script.write_text(
                "#!/bin/sh\n"
                f"exec env -i PATH={PG_BIN}:{_ROOT_PATH} LANG=C.UTF-8 HOME=/var/lib/postgresql "
                '${PGPASSWORD:+PGPASSWORD="$PGPASSWORD"} '
                f'{" ".join(_PRIVATE)} sh -e {namespace} {self.root} {uid} {gid} '
                f'{PG_BIN}/{name} "$@"\n')
            script.chmod(0o755)
        return folder

    def dsn(self, user: str, password: str, dbname: str = "postgres") -> str:
        """Over loopback TCP with a password, as another host (or the 15 cluster) reaches this one."""
        # Imported here: infra/lab/lab.py, a standard-library script, imports this module's mirror.
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host="127.0.0.1", port=str(self.port), user=user, password=password, dbname=dbname)

    def remove(self) -> None:
        """Delete the cluster's folder (data, socket, log); refused while it runs."""
        if self.is_running():
            raise PostgresError(f"PostgreSQL {PG_MAJOR} ({self.name}) đang chạy / is running: stop it first")
        shutil.rmtree(self.home, ignore_errors=True)
