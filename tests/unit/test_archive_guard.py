"""The archive guard sets aside a repository host that does not answer, never the last one, and puts
it back when it answers again (infra/ansible/roles/pgbackrest/files/kntc-archive-guard)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

GUARD = Path(__file__).resolve().parents[2] / "infra/ansible/roles/pgbackrest/files/kntc-archive-guard"


@pytest.fixture
def listener() -> Iterator[int]:
    """A repository host that answers: a TCP listener on 127.0.0.1 (127.0.0.2 on that port refuses)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def guard(tmp_path: Path, port: int, repos: str, grace: int = 0) -> str:
    env = dict(os.environ, KNTC_GUARD_REPOS=repos, KNTC_GUARD_GRACE=str(grace), KNTC_GUARD_PORT=str(port),
               KNTC_GUARD_CONF_D=str(tmp_path / "conf.d"), KNTC_GUARD_STATE=str(tmp_path / "state"),
               KNTC_GUARD_TEXTFILE=str(tmp_path / "textfile"))
    return subprocess.run(["bash", str(GUARD)], env=env, check=True, capture_output=True, text=True,
                          timeout=30).stdout


@pytest.fixture
def conf_d(tmp_path: Path) -> Path:
    d = tmp_path / "conf.d"
    d.mkdir()
    (tmp_path / "textfile").mkdir()
    for n in (1, 2):
        (d / f"repo{n}.conf").write_text(f"[global]\nrepo{n}-host=h{n}\n")
    return d


def test_a_repository_that_does_not_answer_is_set_aside_after_the_grace_and_put_back(tmp_path, conf_d, listener):
    # repo2's host does not answer: within the grace period nothing changes.
    guard(tmp_path, listener, "1:127.0.0.1 2:127.0.0.2", grace=3600)
    assert (conf_d / "repo2.conf").exists()
    out = guard(tmp_path, listener, "1:127.0.0.1 2:127.0.0.2", grace=0)
    assert "repo2" in out and "stops" in out
    assert not (conf_d / "repo2.conf").exists() and (conf_d / "repo2.conf.off").exists()
    assert (conf_d / "repo1.conf").exists()
    prom = (tmp_path / "textfile" / "kntc_archive_guard.prom").read_text()
    assert 'kntc_archive_repo_enabled{repo="2",repo_host="127.0.0.2"} 0' in prom
    assert 'kntc_archive_repo_enabled{repo="1",repo_host="127.0.0.1"} 1' in prom
    # The host answers again (here: repo2 is now the listening address): archiving resumes.
    out = guard(tmp_path, listener, "1:127.0.0.1 2:127.0.0.1")
    assert "resumes" in out
    assert (conf_d / "repo2.conf").exists() and not (conf_d / "repo2.conf.off").exists()


def test_the_last_repository_is_never_set_aside(tmp_path, conf_d, listener):
    guard(tmp_path, listener, "1:127.0.0.2 2:127.0.0.2", grace=0)
    kept = sorted(p.name for p in conf_d.glob("repo*.conf"))
    assert len(kept) == 1, kept
