"""Runbooks that execute: the commands in runbooks/*.md are run by tests/dr as written.

A runnable step is a fenced block whose info string names it, followed by its expectation:

    ```sh step=verify-restore
    kntc-dr verify-restore
    ```
    > expect: exit 0 · contains `ĐẠT / PASS` · `amcheck`

The operator reads the same command and the same expected exit code and output that the test
checks (pgBackRest's user guide works this way: its commands are executed while it is built).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(r"```sh step=(?P<id>[\w-]+)\n(?P<cmd>.*?)\n```\s*\n> expect: (?P<expect>[^\n]+)", re.S)


@dataclass(frozen=True)
class Step:
    id: str
    command: str
    exit_code: int
    contains: tuple[str, ...]


def steps(path: Path) -> dict[str, Step]:
    found: dict[str, Step] = {}
    for m in _STEP.finditer(path.read_text()):
        expect = m.group("expect")
        code = re.search(r"exit (\d+)", expect)
        if code is None:
            raise ValueError(f"{path}: step {m.group('id')} has no 'exit N' in its expectation")
        found[m.group("id")] = Step(m.group("id"), m.group("cmd").strip(), int(code.group(1)),
                                    tuple(re.findall(r"`([^`]+)`", expect)))
    return found


@dataclass(frozen=True)
class StepResult:
    step: Step
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        text = self.stdout + self.stderr
        return self.returncode == self.step.exit_code and all(c in text for c in self.step.contains)

    def explain(self) -> str:
        text = self.stdout + self.stderr
        missing = [c for c in self.step.contains if c not in text]
        return (f"step {self.step.id}: `{self.step.command}` exited {self.returncode} (expected "
                f"{self.step.exit_code}); missing {missing}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n"
                f"{self.stderr[-3000:]}")


def run(path: Path, step_id: str, env: dict[str, str], timeout: float = 600, cwd: Path | None = None) -> StepResult:
    step = steps(path)[step_id]
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", step.command], env=env, cwd=cwd, text=True,
                         capture_output=True, timeout=timeout)
    return StepResult(step, res.returncode, res.stdout, res.stderr)
