"""A real PgBouncer (Debian's) in transaction mode on a free loopback port, as the app hosts run it
(role pgbouncer), for the tests that put the case service behind one: pooling, PAUSE/RESUME, and a
cut-over that points the pool at another cluster (RELOAD) while it is paused."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import free_port, stop

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class Bouncer:
    port: int
    admin: str  # DSN of its admin console
    log: Path
    ini: Path
    database: str
    connect_query: str | None

    def dsn(self, url: str) -> str:
        """`url` (a DSN of a test cluster) through this PgBouncer."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{self.port}").geturl()

    def console(self, command: str) -> None:
        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(command)

    def point_at(self, port: int) -> None:
        """Send the pool's new server connections to the cluster on `port` (RELOAD); those to the
        old one are closed as they are released."""
        rest = self.ini.read_text().partition("[pgbouncer]\n")[2]
        self.ini.write_text(_databases(self.database, port, self.connect_query) + "[pgbouncer]\n" + rest)
        self.console("RELOAD")


def _databases(database: str, port: int, connect_query: str | None) -> str:
    query = f" connect_query='{connect_query}'" if connect_query else ""
    return f"[databases]\n{database} = host=127.0.0.1 port={port} dbname={database}{query}\n"


@contextmanager
def pgbouncer(home_parent: Path, port: int, database: str, users: dict[str, str],
              connect_query: str | None) -> Iterator[Bouncer]:
    """PgBouncer in front of `database` on the cluster at 127.0.0.1:`port`, run as postgres (it will
    not run as root), one server connection per role: every transaction shares it. Its files go in
    a folder of `home_parent`, which the postgres user must be able to enter."""
    if not Path(PGBOUNCER).exists():
        pytest.fail("Debian's pgbouncer is not installed: infra/host/install-deps.sh (make deps)")
    listen = free_port()
    home = home_parent / f"pgbouncer-{listen}"
    home.mkdir(mode=0o700)
    admin_password = "admin-" + os.urandom(8).hex()
    (home / "userlist.txt").write_text("".join(f'"{u}" "{p}"\n' for u, p in {**users, "bouncer": admin_password}
                                               .items()))
    ini = home / "pgbouncer.ini"
    ini.write_text(
        _databases(database, port, connect_query) +
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {home / 'userlist.txt'}\n"
        "admin_users = bouncer\npool_mode = transaction\ndefault_pool_size = 1\nmax_client_conn = 100\n"
        f"query_wait_timeout = 20\nlogfile = {home / 'pgbouncer.log'}\npidfile = {home / 'pgbouncer.pid'}\n")
    pg = pwd.getpwnam("postgres")
    for path in (home, *home.iterdir()):
        os.chown(path, pg.pw_uid, pg.pw_gid)
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", PGBOUNCER, str(ini)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    bouncer = Bouncer(listen, f"postgresql://bouncer:{admin_password}@127.0.0.1:{listen}/pgbouncer",
                      home / "pgbouncer.log", ini, database, connect_query)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                bouncer.console("SHOW VERSION")
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {bouncer.log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield bouncer
    finally:
        stop(proc)
        # Shown with a failing test's output: what PgBouncer said about its clients and servers.
        with contextlib.suppress(OSError):
            print("pgbouncer.log:", *[ln for ln in bouncer.log.read_text().splitlines()
                                      if "WARNING" in ln or "ERROR" in ln or "closing because" in ln][-40:], sep="\n")
        shutil.rmtree(home, ignore_errors=True)


def users_of(env: dict[str, str]) -> dict[str, str]:
    """The roles (and passwords) the case service logs in as, from its environment."""
    users = {}
    for key in ("KNTC_DATABASE_URL", "KNTC_AUTH_DATABASE_URL"):
        parts = urlsplit(env[key])
        users[str(parts.username)] = str(parts.password)
    return users
