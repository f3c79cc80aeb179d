"""A Locust load at a fixed rate for the drills: officers keep working through the app hosts (or the
site balancers) while a drill fails over, releases or upgrades under them.

    with fixed_rate(["https://10.231.1.21:443"], username=..., password=..., ca=CA,
                    rate=10, folder=out) as answers:
        ...  # the drill
    assert not answers.failed, answers.summary()

One Locust process per target (loadtests/drill_officers.py), `users` officers each at `rate / users`
requests a second. The answers are read from the users' own log, so the drill can ask what an
officer saw after a given moment (`longest_wait_after`), not only Locust's aggregate.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

LOCUSTFILE = Path(__file__).resolve().parent / "drill_officers.py"
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0  # seconds for the first answers (a cold Locust, the officers' logins)
STOP_TIMEOUT = 90.0  # Locust lets a request under way finish (nginx ends one after 60 s)


class LoadError(RuntimeError):
    """The load could not start: the message says which target and what Locust said."""


@dataclass
class Answers:
    """Every answer the officers got: (status, seconds) and when each request started (monotonic
    clock of this process, so a drill can compare with its own moments)."""

    answers: list[tuple[int, float]] = field(default_factory=list)  # status 0: no answer
    started: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[int, float]]:
        return [a for a in self.answers if a[0] != 200]

    def first_answer_after(self, t: float) -> float | None:
        """When the first request started after `t` was answered (200): service back, as officers see it."""
        ends = [at + took for at, (status, took) in zip(self.started, self.answers, strict=True)
                if at > t and status == 200]
        return min(ends, default=None)

    @property
    def slowest(self) -> float:
        return max((seconds for _, seconds in self.answers), default=float("nan"))

    def percentile(self, q: float) -> float:
        times = sorted(seconds for _, seconds in self.answers)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(q / 100 * len(times)))]

    def longest_wait_after(self, t: float) -> float | None:
        """The longest time after `t` in which no officer got an answer (200), once answers came
        again: what an officer sees of an outage that began at `t`."""
        ends = sorted(at + took for at, (status, took) in zip(self.started, self.answers, strict=True)
                      if at + took > t and status == 200)
        if not ends:
            return None
        return max(b - a for a, b in itertools.pairwise([t, *ends]))

    def summary(self) -> str:
        return (f"{len(self.answers)} requests, {len(self.failed)} not 200, p50 {self.percentile(50):.3f} s, "
                f"p95 {self.percentile(95):.3f} s, slowest {self.slowest:.2f} s")

    def by_status(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for status, _ in self.answers:
            counts[status] = counts.get(status, 0) + 1
        return counts


def read_answers(logs: list[Path], epoch_to_monotonic: float) -> Answers:
    out = Answers()
    rows = []
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t", 1)[0].split(" ", 4)
            if len(parts) < 4:
                continue  # a line being written as the process stopped
            started, took, status, ok = float(parts[0]), float(parts[1]), int(parts[2]), parts[3] == "1"
            rows.append((started - epoch_to_monotonic, took, status if ok else (status if status != 200 else 0),
                         parts[4] if len(parts) > 4 else ""))
    for started, took, status, name in sorted(rows):
        out.started.append(started)
        out.answers.append((status, took))
        out.names.append(name)
    return out


def first_error(log: Path, out: Path) -> str:
    """What went wrong first: the first failed request's error, else the end of Locust's output."""
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            if "\t" in line:
                return line.split("\t", 1)[1]
    return out.read_text(errors="replace")[-1500:] if out.exists() else "no output"


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


@contextlib.contextmanager
def fixed_rate(targets: list[str], *, username: str, password: str, ca: Path, rate: float, folder: Path,
               users: int = 4, start_timeout: float = START_TIMEOUT, answered_first: bool = True) -> Iterator[Answers]:
    """Officers at `rate` requests a second on each target, from before the block to its end; the
    Answers are filled in when the block ends (and the Locust report is left in `folder`).

    The block starts once every target has answered (`answered_first`), or at once for a target that
    cannot answer yet (the DR's app hosts before a promotion)."""
    folder.mkdir(parents=True, exist_ok=True)
    epoch_to_monotonic = time.time() - time.monotonic()
    procs: list[tuple[str, subprocess.Popen[bytes], Path, Path]] = []
    answers = Answers()
    try:
        for i, target in enumerate(targets):
            log, out = folder / f"answers-{i}.log", folder / f"locust-{i}.log"
            log.unlink(missing_ok=True)
            # The password in the environment, not on the command line, which every local user can read.
            env = {**os.environ, "KNTC_DRILL_LOAD": json.dumps(
                {"username": username, "password": password, "rate_per_user": rate / users, "ca": str(ca),
                 "answers": str(log)})}
            cmd = [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", target, "-u", str(users),
                   "-r", str(users), "--only-summary", "--csv", str(folder / f"locust-{i}"),
                   "--html", str(folder / f"report-{i}.html"), "--exit-code-on-error", "0",
                   "--stop-timeout", str(int(STOP_TIMEOUT - 20)), "--loglevel", "WARNING"]
            with out.open("wb") as sink:
                procs.append((target, subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                                       start_new_session=True), log, out))
        for target, proc, log, out in procs if answered_first else []:
            def answered(log: Path = log) -> bool:
                return log.exists() and sum(1 for line in log.read_text().splitlines() if " 200 1 " in line) >= 5
            if not _wait(answered, start_timeout):
                raise LoadError(f"no officer got an answer from {target} within {start_timeout:.0f} s "
                                f"(Locust exit {proc.poll()}): {first_error(log, out)}")
        yield answers
    finally:
        for _, proc, _, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _, _ in procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        got = read_answers([log for _, _, log, _ in procs], epoch_to_monotonic)
        answers.answers, answers.started, answers.names = got.answers, got.started, got.names
        (folder / "answers.json").write_text(json.dumps(
            {"targets": targets, "rate_per_target": rate, "users_per_target": users,
             "requests": len(answers.answers), "failed": len(answers.failed), "by_status": answers.by_status(),
             "p50_s": answers.percentile(50), "p95_s": answers.percentile(95), "slowest_s": answers.slowest},
            indent=2))
