"""The embedded PostgreSQL 15 cluster that `make app` and the tests run under a data folder.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the `postgres`
system user (from Debian's postgresql-common). The superuser is reached only through the
cluster's own Unix socket with peer authentication; the application roles use TCP on loopback
with scram-sha-256 and passwords generated here, kept in `secrets.env` (mode 0600) beside the
data, never in the repository.

The postgres user must reach the data folder: a checkout under /root (mode 0700) is out of its
reach, so there the server's files (data, socket, log) go to /var/lib/kntc-local/<hash of the
folder>/ instead, and `pg` in the folder links to them (see `server_dir`).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

PG_BIN = Path(os.environ.get("KNTC_PG_BIN", "/usr/lib/postgresql/15/bin"))
# kntc_auth: the login path only (it may open sessions); no table privilege.
ROLES = ("kntc_owner", "kntc_app", "kntc_readonly", "kntc_auth")


# Where the server's files go when the postgres user cannot reach the folder they belong to.
SERVER_BASE = Path("/var/lib/kntc-local")


class LocalDbError(RuntimeError):
    """A problem with the embedded cluster, said in one line."""


def _as_postgres(args: list[str | Path]) -> subprocess.CompletedProcess[str]:
    cmd = [str(a) for a in args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    # From "/": initdb and pg_ctl stop if they cannot read the directory they were started in.
    return subprocess.run(cmd, text=True, capture_output=True, cwd="/")


def postgres_reaches(path: Path) -> bool:
    """Whether the postgres user can enter `path`, or the nearest folder above it that exists
    (every folder on the way searchable by postgres; ACLs count, as the kernel decides)."""
    if os.geteuid() != 0:
        return True  # the server runs as the caller, who is already here
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    return _as_postgres(["test", "-x", existing]).returncode == 0


def server_dir(folder: Path) -> Path:
    """The folder for the files the postgres user owns on behalf of `folder` (a data folder in a
    checkout): `folder` itself when postgres can reach where it is, else a folder of SERVER_BASE
    named for `folder`'s path, so that each checkout (and each test port) has its own."""
    if postgres_reaches(folder.parent):
        return folder
    digest = hashlib.sha256(str(_named(folder)).encode()).hexdigest()[:16]
    return SERVER_BASE / digest


def _named(folder: Path) -> Path:
    # The folder's own path, not where it leads: a folder may become a link to its server folder.
    return folder.parent.resolve() / folder.name


def make_server_dir(path: Path, origin: Path) -> None:
    """Create `path` (from server_dir) for postgres: its own, mode 0700. A folder of SERVER_BASE
    says which folder it serves (in `origin`), for whoever cleans up."""
    if path == origin:
        path.mkdir(parents=True, exist_ok=True)
    else:
        SERVER_BASE.mkdir(mode=0o755, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        (path / "origin").write_text(f"{_named(origin)}\n")
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(path, pg.pw_uid, pg.pw_gid)


@dataclass(frozen=True)
class LocalCluster:
    root: Path  # e.g. .data/local: secrets.env, and pg (the data folder, or a link to it)
    port: int
    database: str = "kntc"

    @cached_property
    def server(self) -> Path:
        """The folder of the server's own files (data, socket, log): `root`, or the one of
        SERVER_BASE that `root/pg` links to (see server_dir)."""
        link = self.root / "pg"
        if link.is_symlink():
            return link.readlink().parent
        return server_dir(self.root)

    @property
    def datadir(self) -> Path:
        return self.server / "pg"

    @property
    def socket_dir(self) -> Path:
        return self.server / "socket"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.env"

    @property
    def log_file(self) -> Path:
        return self.server / "postgresql.log"

    # -- helpers -------------------------------------------------------------------------
    def _psql(self, sql: str, database: str = "postgres") -> str:
        res = _as_postgres(
            [PG_BIN / "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
             "-p", str(self.port), "-d", database, "-c", sql]
        )
        if res.returncode != 0:
            raise LocalDbError(f"psql failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def is_running(self) -> bool:
        res = _as_postgres([PG_BIN / "pg_ctl", "status", "-D", self.datadir])
        return res.returncode == 0

    # -- lifecycle -----------------------------------------------------------------------
    def ensure(self) -> dict[str, str]:
        """Initialise (once), start (if stopped), create roles and database; return the DSNs."""
        if not (PG_BIN / "initdb").exists():
            raise LocalDbError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing): run make deps")
        self.root.mkdir(parents=True, exist_ok=True)
        make_server_dir(self.server, self.root)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.socket_dir, pg.pw_uid, pg.pw_gid)
        # Data that `root` no longer leads to (its link was deleted to start over) is not used.
        if not ((self.root / "pg").resolve() == self.datadir.resolve() and (self.datadir / "PG_VERSION").exists()):
            self._init()
        if not self.is_running():
            self._preload()
            self._start()
        return self._provision()

    def _preload(self) -> None:
        # As on the lab's servers: the statements' planning and execution can be counted (the
        # benchmarks, and the tests that a function keeps its plans, read them). A cluster made
        # before this setting gets it at its next start.
        conf = self.datadir / "postgresql.conf"
        if "\nshared_preload_libraries = 'pg_stat_statements'" not in conf.read_text():
            with conf.open("a") as f:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n")

    def _init(self) -> None:
        link = self.root / "pg"
        if self.server != self.root and link.is_dir() and not link.is_symlink():
            raise LocalDbError(f"{link} is a data folder the postgres user cannot reach: move the checkout where "
                               f"postgres can enter it, or stop that cluster and delete {link} to start over")
        if self.datadir.exists():
            # A folder left by an interrupted initdb, or the data of a folder that was deleted to
            # start over (its link and secrets are gone): it holds no data worth keeping.
            self.stop()
            shutil.rmtree(self.datadir)
        res = _as_postgres(
            [PG_BIN / "initdb", "-D", self.datadir, "--data-checksums", "--encoding=UTF8",
             "--locale=C.UTF-8", "--auth-local=peer", "--auth-host=scram-sha-256", "-U", "postgres"]
        )
        if res.returncode != 0:
            raise LocalDbError(f"initdb failed: {res.stderr.strip()}")
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# kntc embedded cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "shared_buffers = '256MB'\n"
                "max_connections = 200\n"
                "wal_level = replica\n"
                "fsync = on\n"
                "log_min_duration_statement = 1000\n"
            )
        self._preload()
        if self.server != self.root:
            link.unlink(missing_ok=True)
            link.symlink_to(self.datadir, target_is_directory=True)
        # root reaches the superuser through peer auth mapped to postgres; nobody else does.
        (self.datadir / "pg_ident.conf").write_text("admin root postgres\nadmin postgres postgres\n")
        (self.datadir / "pg_hba.conf").write_text(
            "local all postgres peer map=admin\n"
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _port_holder(self) -> str | None:
        """Who listens on our port already, if anyone: another checkout's cluster, typically.
        pg_ctl would only say so in the last lines of a log."""
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                return None
        holder = "another program"
        ss = shutil.which("ss")
        out = subprocess.run([ss, "-Hltnp", f"sport = :{self.port}"], capture_output=True, text=True,
                             timeout=10).stdout if ss else ""
        if (pid := out.partition("pid=")[2].partition(",")[0]).isdigit():
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                args = []
            holder = f"process {pid}"
            if b"-D" in args and args.index(b"-D") + 1 < len(args):
                holder = f"the PostgreSQL of {args[args.index(b'-D') + 1].decode(errors='replace')}"
        return holder

    def _start(self) -> None:
        if (holder := self._port_holder()) is not None:
            raise LocalDbError(f"port {self.port} on 127.0.0.1 is taken by {holder}: stop it "
                               f"(pg_ctl stop -D <its data folder>) or choose another port")
        # A postmaster killed without cleanup leaves its pid file; pg_ctl handles a stale one.
        res = _as_postgres(
            [PG_BIN / "pg_ctl", "start", "-w", "-t", "60", "-D", self.datadir, "-l", self.log_file]
        )
        if res.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-800:] if self.log_file.exists() else ""
            raise LocalDbError(f"PostgreSQL did not start: {res.stderr.strip()} {tail}")
        for _ in range(50):
            if _as_postgres([PG_BIN / "pg_isready", "-h", self.socket_dir, "-p", str(self.port)]).returncode == 0:
                return
            time.sleep(0.2)
        raise LocalDbError("PostgreSQL started but does not accept connections")

    def stop(self) -> None:
        if self.is_running():
            _as_postgres([PG_BIN / "pg_ctl", "stop", "-m", "fast", "-w", "-D", self.datadir])

    def _passwords(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.secrets_file.exists():
            for line in self.secrets_file.read_text().splitlines():
                k, _, v = line.partition("=")
                found[k] = v
        changed = False
        for key in (*[f"{r}_password" for r in ROLES], "secret_key"):
            if key not in found:
                found[key] = secrets.token_hex(32 if key == "secret_key" else 24)
                changed = True
        if changed:
            self.secrets_file.write_text("".join(f"{k}={v}\n" for k, v in found.items()))
            self.secrets_file.chmod(0o600)
        return found

    def _provision(self) -> dict[str, str]:
        pw = self._passwords()
        for role in ROLES:
            exists = self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'")
            verb = "ALTER" if exists else "CREATE"
            self._psql(f"{verb} ROLE {role} LOGIN PASSWORD '{pw[role + '_password']}'")
        self.ensure_database(self.database)
        return {
            "KNTC_AUTH_DATABASE_URL": self.dsn("kntc_auth", pw["kntc_auth_password"]),
            "KNTC_DATABASE_URL": self.dsn("kntc_app", pw["kntc_app_password"]),
            "KNTC_ADMIN_DATABASE_URL": self.dsn("kntc_owner", pw["kntc_owner_password"]),
            "KNTC_READONLY_DATABASE_URL": self.dsn("kntc_readonly", pw["kntc_readonly_password"]),
            "KNTC_SECRET_KEY": pw["secret_key"],
        }

    def ensure_database(self, name: str, fresh: bool = False) -> None:
        if fresh:
            self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self._psql(f'CREATE DATABASE "{name}" OWNER kntc_owner')
            self._psql(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
        # Every time: a cluster made before a role was added gets its grant too.
        self._psql(f'GRANT CONNECT ON DATABASE "{name}" TO kntc_app, kntc_readonly, kntc_auth')

    def dsn(self, role: str, password: str, database: str | None = None) -> str:
        return (
            f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database or self.database}"
            "?application_name=kntc"
        )

    def superuser_psql(self, sql: str, database: str | None = None) -> str:
        return self._psql(sql, database or self.database)
