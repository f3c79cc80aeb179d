"""runbooks/restore.md, executed: backup, info, restore into scratch, refusal, verify-restore."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr import proc
from dr.drills import pitr
from tests.dr.conftest import RESTORE_MD, RunStep

pytestmark = pytest.mark.drill


def test_info_shows_the_encrypted_stanza_and_its_backup(run_step: RunStep) -> None:
    res = run_step(RESTORE_MD, "info")
    assert "full" in res.stdout and "kntc-dr-" in res.stdout


def test_restore_latest_into_scratch_starts_promotes_and_has_the_data(run_step: RunStep, scratch_dir: str) -> None:
    res = run_step(RESTORE_MD, "restore-scratch", SCRATCH=scratch_dir)
    assert "MB/s" in res.stdout
    inspect = run_step(RESTORE_MD, "inspect", SCRATCH=scratch_dir)
    cases = int(inspect.stdout.strip().split("=")[1])
    assert cases > 0

    # The copy dies like a primary on power loss: postmaster.pid stays, the state is "in production".
    pid = int(Path(scratch_dir, "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"postmaster {pid} still alive 30 s after SIGKILL"
        time.sleep(0.1)
    refused = run_step(RESTORE_MD, "restore-refused-unclean", SCRATCH=scratch_dir)
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    Path(scratch_dir, "postmaster.pid").unlink()  # the operator's decision: it is fenced
    run_step(RESTORE_MD, "restore-delta", SCRATCH=scratch_dir)
    assert run_step(RESTORE_MD, "inspect", SCRATCH=scratch_dir).stdout.strip() == f"case_file={cases}"
    run_step(RESTORE_MD, "stop-scratch", SCRATCH=scratch_dir)


def test_restore_refuses_the_running_source_data_directory(run_step: RunStep, dr_env: dict[str, str]) -> None:
    pg_version = Path(dr_env["PGDATA"], "PG_VERSION").read_text()
    res = run_step(RESTORE_MD, "restore-refused")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("kntc-dr: từ chối khôi phục / refusing to restore")
    # Nothing was touched: the source still answers and its files are in place.
    ready = subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_isready", "-h",
                            dr_env["SOURCE_SOCKET"], "-p", dr_env["SOURCE_PORT"]], capture_output=True)
    assert ready.returncode == 0
    assert Path(dr_env["PGDATA"], "PG_VERSION").read_text() == pg_version


def _latest_report(dr_env: dict[str, str]) -> dict:
    reports = sorted(Path(dr_env["KNTC_DR_STATE"], "reports").glob("verify-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())


@pytest.fixture
def writer(dr_env: dict[str, str]) -> Iterator[None]:
    """The drill's writer (one INSERT per transaction into kntc.case_event) against the sandbox."""
    stop = multiprocessing.get_context("fork").Event()
    conninfo = f"host={dr_env['SOURCE_SOCKET']} port={dr_env['SOURCE_PORT']} user=postgres dbname=kntc"
    with open(os.devnull, "w") as acks:
        p = proc.start_as_postgres(pitr._writer, conninfo, acks, stop, 1000, 0.002)
        try:
            yield
        finally:
            stop.set()
            p.join(30)
    assert p.exitcode == 0


def test_verify_restore_passes_on_an_incremental_backup_taken_under_writes(
        run_step: RunStep, dr_env: dict[str, str], writer: None) -> None:
    # The manifest is taken while the writer commits: its digests must still match the restore.
    run_step(RESTORE_MD, "backup-incr")
    run_step(RESTORE_MD, "verify-restore")
    report = _latest_report(dr_env)
    assert report["passed"] and report["figures"]["amcheck_indexes"] > 0
    assert report["figures"]["backup_type"] == "incr"
    assert report["figures"]["restore_target"].startswith("name:kntc-dr-")
    print("\nverify-restore figures:", json.dumps(report["figures"], indent=1))


@pytest.fixture
def damaged_backup_file(dr_env: dict[str, str]) -> Iterator[Path]:
    """Flip 16 bytes in the middle of the largest relation file of the newest backup, then put them back."""
    stanza_dir = next(Path(dr_env["SANDBOX"], "repo", "backup").iterdir())
    newest = sorted(p for p in stanza_dir.iterdir() if p.is_dir() and p.name[:8].isdigit())[-1]
    victim = max((p for p in (newest / "pg_data" / "base").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    damaged = bytearray(original)
    mid = len(damaged) // 2
    for i in range(mid, mid + 16):
        damaged[i] ^= 0xFF
    victim.write_bytes(bytes(damaged))
    try:
        yield victim
    finally:
        victim.write_bytes(original)


def test_verify_restore_fails_clearly_on_a_corrupted_repository_file(
        run_step: RunStep, dr_env: dict[str, str], damaged_backup_file: Path) -> None:
    res = run_step(RESTORE_MD, "verify-restore-damaged")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    report = _latest_report(dr_env)
    assert not report["passed"]
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {"restore", "pgbackrest verify"} <= failed
    assert "checksum invalid 1" in " ".join(report["reasons"])
