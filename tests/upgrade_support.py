"""A PostgreSQL 17 cluster from a Debian 13 root (dr.newer_postgres) for the tests of the 15 → 17
upgrade: the new site's version, on this Debian 12 host that carries 15 only.

A test module takes the `newer_postgres` fixture by importing it (fixtures of one folder cannot be
shared with another's without a plugin); each importing module gets a cluster of its own. The root
is built once (about a minute) into the machine's cache, $KNTC_CACHE_DIR or /var/cache/kntc, and
reused by every later session of any checkout, as the lab's image is.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dr.newer_postgres import Cluster, ensure_root
from tests.conftest import free_port

CACHE = Path(os.environ.get("KNTC_CACHE_DIR", "/var/cache/kntc"))
# wal_level = logical: the way back after a cut-over is the 17 publishing to the 15.
SETTINGS = {"wal_level": "logical", "shared_buffers": "64MB", "log_line_prefix": "%m [%p] "}


@dataclass(frozen=True)
class NewerPostgres:
    """A running 17 cluster and its superuser's password."""

    cluster: Cluster
    password: str

    @property
    def port(self) -> int:
        return self.cluster.port

    def superuser(self, dbname: str = "postgres") -> str:
        return self.cluster.dsn("postgres", self.password, dbname)

    def run(self, program: str, args: list[str], *, stdin: str | None = None, env: Mapping[str, str] | None = None,
            timeout: float) -> subprocess.CompletedProcess[str]:
        """One of 17's client programs (as `dr.upgrade.Tools` calls them), run in the root."""
        return self.cluster.run(program, *args, input=stdin, env=env, timeout=timeout)


def _owned(root: Path, name: str) -> int | None:
    """Hold the lock that says a live session owns cluster `name`; None when another holds it."""
    fd = os.open(root / "srv" / f".{name}.owner", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _sweep(root: Path) -> None:
    """Stop and delete the clusters of sessions that ended without doing so (killed, interrupted):
    each live session holds its cluster's lock, a dead one's lock is free."""
    for home in (root / "srv").glob("test-*"):
        fd = _owned(root, home.name)
        if fd is None:
            continue
        try:
            stale = Cluster(root, home.name, 0)
            stale.stop()
            stale.remove()
            (root / "srv" / f".{home.name}.owner").unlink(missing_ok=True)
        finally:
            os.close(fd)


@contextmanager
def newer_cluster(settings: Mapping[str, str] | None = None) -> Iterator[NewerPostgres]:
    """A fresh 17 cluster on a free loopback port, stopped and deleted afterwards."""
    root = ensure_root(CACHE)
    _sweep(root)
    port = free_port()
    cluster = Cluster(root, f"test-{port}", port)
    password = "newer-" + os.urandom(12).hex()
    owner = _owned(root, cluster.name)
    assert owner is not None, f"another session holds {cluster.name}"
    cluster.remove()  # what an interrupted session left under that name
    try:
        cluster.init(password, {**SETTINGS, **(settings or {})})
        cluster.start()
        yield NewerPostgres(cluster, password)
    finally:
        cluster.stop()
        cluster.remove()
        (root / "srv" / f".{cluster.name}.owner").unlink(missing_ok=True)
        os.close(owner)


@pytest.fixture(scope="module")
def newer_postgres() -> Iterator[NewerPostgres]:
    with newer_cluster() as newer:
        yield newer
