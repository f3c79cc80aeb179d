"""PostgreSQL 17 from a Debian 13 root (dr.newer_postgres): reached over loopback TCP by password,
its own client programs, and a server whose mounts never show on the host and go when it stops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests import upgrade_support
from tests.conftest import ROOT
from tests.upgrade_support import NewerPostgres

# The fixture, bound here so that pytest finds it (an import of the name reads as unused to ruff).
newer_postgres = upgrade_support.newer_postgres


def mounts_into(root: Path) -> list[str]:
    """Mount points of this (the host's) mount namespace at or under `root`."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == str(root) or point.startswith(f"{root}/"):
            found.append(point)
    return found


def in_namespace(ns: str) -> set[tuple[int, int]]:
    """The processes in mount namespace `ns`, each as (pid, start time in clock ticks since boot).

    A namespace's number is given again to the next namespace made once it ends (a container or a
    build beside the tests makes them all the time), so "nothing is in `ns` any more" is asked of
    the processes that were in it, not of whatever holds the number now."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "mnt") == ns:
                # The command may hold spaces and parentheses; the fields after its last ")" do not.
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                found.add((int(entry.name), int(stat[19])))
        except (OSError, IndexError, ValueError):  # a process that ended while we looked
            continue
    return found


def test_17_answers_over_loopback_tcp_to_the_superuser_password_only(newer_postgres: NewerPostgres) -> None:
    with psycopg.connect(newer_postgres.superuser(), connect_timeout=5) as conn:
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 170000
        assert conn.execute("SHOW data_checksums").fetchone()[0] == "on"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(newer_postgres.cluster.dsn("postgres", "not-the-password"), connect_timeout=5)


def test_the_client_programs_are_17s_and_reach_the_cluster_by_its_socket(newer_postgres: NewerPostgres) -> None:
    version = newer_postgres.cluster.run("pg_dump", "--version", timeout=30)
    assert version.returncode == 0 and re.search(r"\(PostgreSQL\) 17\.", version.stdout), version
    who = newer_postgres.cluster.run("psql", "-XAt", "-c", "SELECT current_user", timeout=30)
    assert (who.returncode, who.stdout.strip()) == (0, "postgres"), who.stderr


def test_the_server_outlives_its_caller_in_a_namespace_that_ends_with_it(newer_postgres: NewerPostgres) -> None:
    cluster = newer_postgres.cluster
    pid = cluster.pid()
    assert pid is not None
    ns = os.readlink(f"/proc/{pid}/ns/mnt")
    assert ns != os.readlink("/proc/self/ns/mnt")
    assert mounts_into(cluster.root) == []
    owner = (cluster.datadir / "PG_VERSION").stat().st_uid
    assert owner != 0 and f"Uid:\t{owner}\t" in Path(f"/proc/{pid}/status").read_text()

    members = in_namespace(ns)
    assert pid in {p for p, _ in members}
    cluster.stop()
    assert not cluster.is_running()
    assert members & in_namespace(ns) == set() and mounts_into(cluster.root) == []

    # Started by a Python process that then ends: the server stays (the fixture stops it).
    starter = (f"from pathlib import Path; from dr.newer_postgres import Cluster; "
               f"Cluster(Path({str(cluster.root)!r}), {cluster.name!r}, {cluster.port}).start()")
    res = subprocess.run([sys.executable, "-c", starter], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert cluster.is_running()
    with psycopg.connect(newer_postgres.superuser(), connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
