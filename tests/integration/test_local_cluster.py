"""The embedded cluster (`make app`, `make test`) starts from any checkout root makes, also from one
the postgres user cannot enter (a clone under /root, mode 0700): the server's files then live
where postgres reaches them, and the checkout's data folder leads to them."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core_app.localdb import LocalCluster
from tests.conftest import ROOT, free_port

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="as another user the cluster runs as that user")


@pytest.fixture
def private_clone(tmp_path: Path) -> Path:
    """A clone of this checkout in a folder only root may enter, as a new user's under /root."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(home / "kntc")], check=True,
                   capture_output=True, timeout=120)
    return home / "kntc"


@pytest.fixture
def cluster(private_clone: Path) -> Iterator[LocalCluster]:
    """The clone's cluster on a free port; stopped and its server folder removed whatever happens."""
    cluster = LocalCluster(private_clone / ".data" / "local", free_port())
    yield cluster
    cluster.stop()
    if cluster.server != cluster.root:
        shutil.rmtree(cluster.server, ignore_errors=True)


def kntc(clone: Path, cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    # From inside the clone, as `make app` runs it: whatever postgres runs must not need this folder.
    return subprocess.run([str(BIN / "kntc"), "local", *args, "--root", str(cluster.root), "--port", str(cluster.port)],
                          cwd=clone, capture_output=True, text=True, timeout=180)


def test_the_embedded_cluster_starts_from_a_checkout_postgres_cannot_enter(private_clone, cluster):
    res = kntc(private_clone, cluster, "env")
    assert res.returncode == 0, res.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in res.stdout.splitlines())
    with psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"].strip("'"), connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("kntc_owner",)

    # The data is outside the checkout, in a folder of postgres's own, and the checkout's `pg` leads to it.
    assert not cluster.datadir.resolve().is_relative_to(private_clone)
    assert (cluster.root / "pg" / "PG_VERSION").exists()
    info = cluster.server.stat()
    assert info.st_uid == pwd.getpwnam("postgres").pw_uid and stat.S_IMODE(info.st_mode) == 0o700

    res = kntc(private_clone, cluster, "stop")
    assert res.returncode == 0 and "stopped" in res.stdout, res.stderr
    assert not cluster.is_running()
