"""The fixtures' `stop`: a server started in a session of its own leaves nothing behind it, whether
its main process and workers ignore the polite signal (a server stuck in its start) or the main
process ends on it and leaves a worker behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import stop

# A worker that ignores SIGTERM, started by a main process that then waits.
WORKER = ("import subprocess, sys, time\n"
          "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
          "time.sleep(600)\n")
# A main process that ignores SIGTERM too (a server stuck in its start).
STUBBORN = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + WORKER
# A main process with the default SIGTERM: it ends at once and leaves the worker behind.
POLITE_MAIN = WORKER


def group(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group."""
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,pid="], capture_output=True, text=True, check=True).stdout
    return [f[2] for f in (ln.split() for ln in out.splitlines()) if int(f[0]) == pgid and not f[1].startswith("Z")]


@pytest.mark.parametrize("program", [STUBBORN, POLITE_MAIN], ids=["both-ignore-sigterm", "main-stops-worker-stays"])
def test_stop_leaves_no_process_of_the_servers_group(program: str):
    proc = subprocess.Popen([sys.executable, "-c", program], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(group(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(group(proc.pid)) == 2, "the worker did not start"
    stop(proc)
    deadline = time.monotonic() + 10
    while group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group(proc.pid) == [], "a process of the server's group outlived stop()"
