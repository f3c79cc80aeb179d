"""A drill's frame: its report, its deadlines, and the runbook steps it runs as written."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from dr.errors import NotInTime, VerificationFailed
from dr.lab import Inventory
from dr.report import Report


class DrillFailed(VerificationFailed):
    """A drill expectation missed its deadline, or an invariant was broken."""



# What ends a drill early: its own checks, and a site command's deadline.
FAILURES = (DrillFailed, NotInTime)



def new_report(kind: str, title: str, stanza: str = "-") -> Report:
    return Report(kind, title, stanza)





# ------------------------------------------------------------------ runbook steps
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def step_env(inv: Inventory, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a runbook step sees: the venv's commands first on PATH, the drill's inventory."""
    import os
    import sys

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "KNTC_DR_INVENTORY": str(inv.path.parent), "COLUMNS": "200", **(extra or {})}


class StepRunner:
    """Runs a runbook's `step=` blocks as written and checks their expected exit code and output."""

    def __init__(self, env: dict[str, str], report: Report, log: Callable[[str], None]) -> None:
        self.env = env
        self.report = report
        self.log = log
        self.timings: dict[str, float] = {}
        self.outputs: dict[str, str] = {}  # a step's standard output, for the figures it prints

    def run(self, runbook_name: str, step_id: str, timeout: float = 900, fatal: bool = True) -> tuple[float, float]:
        """Run one step; a failed step fails the report, and stops the drill unless `fatal` is false
        (a step whose failure leaves the sites in a state the next steps still put right)."""
        from dr import runbook

        path = RUNBOOKS / runbook_name
        step = runbook.steps(path)[step_id]
        self.log(f"  $ {step.command}")
        t0 = time.time()
        res = runbook.run(path, step_id, self.env, timeout=timeout, cwd=RUNBOOKS.parent)
        t1 = time.time()
        self.timings[step_id] = round(t1 - t0, 2)
        self.outputs[step_id] = res.stdout
        for line in (res.stdout + res.stderr).strip().splitlines()[-6:]:
            self.log(f"    {line}")
        self.report.check(f"{runbook_name} {step_id}", res.ok,
                          f"{t1 - t0:.1f} s" if res.ok else res.explain()[:600])
        if not res.ok and fatal:
            raise DrillFailed(f"{runbook_name} step {step_id} failed")
        return t0, t1 if res.ok else float("nan")


def heal_lab() -> None:
    """Undo the lab's site cut after a drill that failed half-way (the drill never leaves it cut)."""
    lab_py = RUNBOOKS.parent / "infra" / "lab" / "lab.py"
    if lab_py.exists():
        subprocess.run([str(lab_py), "heal"], check=False, capture_output=True, timeout=60)


def remake_lab_site(site: str, like: str, timeout: float = 1200) -> float:
    """The lab's reinstall of a site's machines with the release another site runs (`lab.py remake
    --no-provision`: new hosts and the inventory that says so; the runbook's own step provisions
    them). What an operator does with the installer, which no runbook step can do for them."""
    lab_py = RUNBOOKS.parent / "infra" / "lab" / "lab.py"
    t0 = time.monotonic()
    try:
        res = subprocess.run([str(lab_py), "remake", site, "--like", like, "--no-provision"], check=False,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DrillFailed(f"lab.py remake {site}: no end after {timeout:.0f} s") from exc
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no output"])[-1]
        raise DrillFailed(f"lab.py remake {site} exited {res.returncode}: {last}")
    return time.monotonic() - t0
