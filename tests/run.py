"""`make test`: every test, as two pytest sessions at once, the lab's and the others'.

In one session the lab came up in the background while the tests needing no lab ran, and then stood
ready and idle until the last of them had finished (about ten minutes of a full run from a fresh
clone), because one session runs one test at a time. Here the lab's session brings the lab up and
starts its tests as soon as it is ready, while the other session goes on beside it; each session
keeps its own test clusters (a block of ports each) and its own figures file, merged into
test-output/figures.json at the end.

The lab's session prints as it runs; the other's output is kept in test-output/pytest-no-lab.log
and printed whole, between two lines of the lab's, as soon as it ends. The exit status is the
worse of the two (a session that selected no test counts as passed when the other ran some).
Arguments go to both sessions; with `-m`, which would replace the split, one session runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.ports import free_block

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"
PYTEST = [sys.executable, "-m", "pytest"]
NO_TESTS = 5  # pytest's exit status when a session selected no test


def _blocks() -> tuple[int, int]:
    """The two sessions' port blocks: the given one (or the first free) and the next free after it."""
    first = int(os.environ["KNTC_TEST_PG_PORT"]) if "KNTC_TEST_PG_PORT" in os.environ else free_block()
    second = free_block(first + 10) if first is not None else None
    if first is None or second is None:
        sys.exit("tests/run.py: no two free blocks of ports for the test clusters: set KNTC_TEST_PG_PORT")
    return first, second


def _merge_figures(side: Path) -> None:
    """The other session's figures into test-output/figures.json, beside the lab's."""
    if not side.exists():
        return
    main = OUT / "figures.json"
    merged = json.loads(main.read_text()) if main.exists() else {}
    merged.update(json.loads(side.read_text()))
    main.write_text(json.dumps(merged, indent=2))
    side.unlink()


def early(environ: dict[str, str]) -> str:
    """KNTC_LAB_EARLY for the lab's session: bring the lab up at collection, beside the other session,
    unless whoever runs the tests asked for the bring-up at the first lab test (`KNTC_LAB_EARLY=0`)."""
    return "0" if environ.get("KNTC_LAB_EARLY") == "0" else "beside"


def combined(lab_rc: int, other_rc: int) -> int:
    """One exit status for the two sessions."""
    if lab_rc == other_rc == NO_TESTS:
        return NO_TESTS
    worst = [rc for rc in (lab_rc, other_rc) if rc not in (0, NO_TESTS)]
    return worst[0] if worst else 0


def main(args: list[str]) -> int:
    if "-m" in args or any(a.startswith("-m=") for a in args):
        return subprocess.call([*PYTEST, *args], cwd=ROOT)
    OUT.mkdir(exist_ok=True)
    first, second = _blocks()
    log = OUT / "pytest-no-lab.log"
    side_figures = "figures-no-lab.json"
    (OUT / side_figures).unlink(missing_ok=True)
    base = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        other = subprocess.Popen([*PYTEST, "-m", "not lab", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL,
                                 env={**base, "KNTC_TEST_PG_PORT": str(first), "KNTC_FIGURES_FILE": side_figures})
    lab = subprocess.Popen([*PYTEST, "-m", "lab", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, text=True, errors="replace",
                           env={**base, "KNTC_TEST_PG_PORT": str(second), "KNTC_LAB_EARLY": early(base)})
    print(f"tests/run.py: the lab's tests here (test clusters on port {second}); the others beside them "
          f"(port {first}), printed when they end (test-output/{log.name})", flush=True)
    other_done = threading.Event()
    threading.Thread(target=lambda: (other.wait(), other_done.set()), daemon=True).start()
    shown = False

    def show_other() -> None:
        nonlocal shown
        shown = True
        print(f"\n{'=' * 30} the tests needing no lab (exit {other.returncode}) {'=' * 30}", flush=True)
        print(log.read_text(errors="replace"), flush=True)
        if lab.poll() is None:
            print(f"{'=' * 30} the lab's tests go on {'=' * 30}", flush=True)

    try:
        assert lab.stdout is not None
        for line in lab.stdout:
            print(line, end="", flush=True)
            if other_done.is_set() and not shown:
                show_other()
        lab.wait()
        other.wait()
    except KeyboardInterrupt:
        for proc in (lab, other):
            proc.send_signal(signal.SIGINT)
        for proc in (lab, other):
            proc.wait(60)
        raise
    if not shown:
        show_other()
    _merge_figures(OUT / side_figures)
    rc = combined(lab.returncode, other.returncode)
    print(f"tests/run.py: the lab's tests exit {lab.returncode}, the others exit {other.returncode}: exit {rc}",
          flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
