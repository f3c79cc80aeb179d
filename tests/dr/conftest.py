"""DR tests: a sandbox source cluster (PostgreSQL 15 + an encrypted pgBackRest repository) built by the
runbook's own commands, and a helper that runs a runbook step and checks its written expectation.

Ports: the sandbox source on $KNTC_TEST_PG_PORT+1, scratch copies on +2, the PITR drill on +3/+4.
Everything lives in .data/dr-test-<port>/ (or, when postgres cannot enter the checkout, in the folder
of /var/lib/kntc-local/ that core_app.localdb gives it; .data/dr-test-<port> then links to it); the
next session starts it afresh (`sandbox up --fresh`). A failed test's pgBackRest and PostgreSQL logs
and reports are copied to <test>_failed/ there.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core_app.localdb import make_server_dir, server_dir
from dr import runbook
from tests.upgrade_support import newer_postgres  # noqa: F401  (the 17 of the major upgrade's tests)

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESTORE_MD = ROOT / "runbooks" / "restore.md"
PITR_MD = ROOT / "runbooks" / "dr-pitr.md"
BASE_PORT = int(os.environ["KNTC_TEST_PG_PORT"])

RunStep = Callable[..., runbook.StepResult]


@functools.cache
def work_dir() -> Path:
    """The DR tests' folder: PostgreSQL and pgBackRest run as postgres and must reach it."""
    wanted = ROOT / ".data" / f"dr-test-{BASE_PORT}"
    work = server_dir(wanted)
    if work == wanted:
        work.mkdir(parents=True, exist_ok=True)
        return work
    make_server_dir(work, wanted)
    if wanted.is_symlink() and wanted.readlink() == work:
        return work
    # Where a run left something else: a folder from before, or a link elsewhere.
    if wanted.is_symlink():
        wanted.unlink()
    shutil.rmtree(wanted, ignore_errors=True)
    wanted.parent.mkdir(parents=True, exist_ok=True)
    wanted.symlink_to(work, target_is_directory=True)
    return work


@pytest.fixture(scope="session")
def dr_env() -> Iterator[dict[str, str]]:
    work = work_dir()
    sandbox = work / "sandbox"
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SANDBOX": str(sandbox), "SANDBOX_PORT": str(BASE_PORT + 1),
        "KNTC_DR_CONFIG": str(sandbox / "dr.toml"), "KNTC_DR_STATE": str(sandbox / "state"),
        "SCRATCH_PORT": str(BASE_PORT + 2), "PGDATA": str(sandbox / "source" / "pg"),
        "SOURCE_SOCKET": str(sandbox / "source" / "sock"), "SOURCE_PORT": str(BASE_PORT + 1),
        "DRILL_DIR": str(work / "drill"), "DRILL_PORT": str(BASE_PORT + 3),
        # pgBackRest reads PGBACKREST_* options from the environment: no 15 s retry of a damaged
        # file in the corruption test (production keeps the default retries).
        "PGBACKREST_JOB_RETRY": "0",
        "COLUMNS": "200",
    }
    for step in ("sandbox", "backup-full"):
        res = runbook.run(RESTORE_MD, step, env, cwd=work)
        assert res.ok, res.explain()
    yield env
    subprocess.run([str(BIN / "kntc-dr"), "sandbox", "down", "--workdir", str(sandbox)], env=env, check=False,
                   capture_output=True, timeout=120)


@pytest.fixture
def run_step(dr_env: dict[str, str]) -> RunStep:
    def run(path: Path, step: str, **extra: str) -> runbook.StepResult:
        res = runbook.run(path, step, {**dr_env, **extra}, cwd=work_dir())
        assert res.ok, res.explain()
        return res

    return run


@pytest.fixture
def scratch_dir(dr_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty directory for a manual restore; the copy is stopped afterwards whatever happens."""
    d = Path(dr_env["SANDBOX"]) / "manual" / request.node.name / "pg"
    if d.parent.exists():
        shutil.rmtree(d.parent)
    d.parent.mkdir(parents=True)
    yield str(d)
    if (d / "postmaster.pid").exists():
        subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-D", str(d),
                        "-m", "immediate"], capture_output=True, timeout=60)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the evidence of a failed DR test: pgBackRest and PostgreSQL logs and the reports."""
    report = yield
    if report.failed and call.when == "call":
        work = work_dir()
        dest = work / f"{item.name}_failed"
        shutil.rmtree(dest, ignore_errors=True)
        for src in (work / "sandbox" / "state" / "log", work / "sandbox" / "state" / "reports",
                    work / "drill" / "state" / "log", work / "drill" / "state" / "reports"):
            if src.exists():
                shutil.copytree(src, dest / src.relative_to(work), dirs_exist_ok=True)
        for log in work.glob("*/source/postgresql.log"):
            (dest / log.relative_to(work)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, dest / log.relative_to(work))
    return report
