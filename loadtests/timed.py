"""Run a command and report its wall time, CPU time and peak memory, as `/usr/bin/time -v` does.

The figures come from the same place GNU time reads them, the kernel's rusage of the waited-for
child (wait4), so they match. It exists because the lab's hosts have no GNU time, and it uses the
standard library only, so that it can be sent to a host over SSH and run by the system Python:

    ssh host 'python3 - -- kntc accounts import roster.csv' < loadtests/timed.py

The command's output passes through unchanged; the last line is `TIMED {json}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

MARK = "TIMED "


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: timed.py [--] COMMAND [ARG...]", file=sys.stderr)
        return 2
    started = time.monotonic()
    proc = subprocess.Popen(argv)
    # wait4, not Popen.wait: it hands back the child's rusage (CPU, peak RSS) with its status.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    figures = {"exit_code": proc.returncode, "wall_seconds": round(wall, 3),
               "user_seconds": round(usage.ru_utime, 3), "system_seconds": round(usage.ru_stime, 3),
               "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
               "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}  # Linux gives kilobytes
    sys.stdout.flush()
    print(MARK + json.dumps(figures), flush=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
