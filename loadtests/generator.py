"""The load generator's own cost: memory and CPU of each Locust process, summed over the run.

A load test on a shared machine must say what the generator itself took, or its figures cannot be
told apart from the server's. Every process (the master, each worker, or the single process)
samples its own resident memory and CPU time every few seconds in a greenlet; workers send theirs
to the master with their statistics, and the master writes `generator.json` in the report folder
and logs one line: processes, users, peak memory (the sum of each process's peak: an upper bound
of what was resident at once), CPU seconds and the share of one core.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("loadtests.generator")
REPORT = "generator.json"
SAMPLE_SECONDS = 2.0


class Sampler:
    """This process's resident memory (peak and last) and CPU time since it started sampling."""

    def __init__(self) -> None:
        self._proc: psutil.Process | None = None
        self.started = 0.0
        self.cpu0 = 0.0
        self.peak_rss = 0
        self.last_rss = 0
        self.users = 0  # the most users this process had at once
        self._greenlet: Any = None

    @property
    def proc(self) -> psutil.Process:
        # Made in the process that samples: Locust's --processes forks the workers after import.
        if self._proc is None or self._proc.pid != os.getpid():
            self._proc = psutil.Process(os.getpid())
        return self._proc

    def sample(self) -> None:
        rss = self.proc.memory_info().rss
        self.last_rss = rss
        self.peak_rss = max(self.peak_rss, rss)

    def start(self) -> None:
        if self._greenlet is not None:
            return
        import gevent

        self.started = time.monotonic()
        t = self.proc.cpu_times()
        self.cpu0 = t.user + t.system
        self.sample()

        def loop() -> None:
            while True:
                gevent.sleep(SAMPLE_SECONDS)
                self.sample()
        self._greenlet = gevent.spawn(loop)

    def note_users(self, users: int) -> None:
        self.users = max(self.users, users)

    def report(self) -> dict[str, Any]:
        self.sample()
        t = self.proc.cpu_times()
        return {"pid": self.proc.pid, "users": self.users, "rss_mb_peak": round(self.peak_rss / 2**20, 1),
                "rss_mb_last": round(self.last_rss / 2**20, 1),
                "cpu_s": round(t.user + t.system - self.cpu0, 2),
                "wall_s": round(time.monotonic() - self.started, 1) if self.started else 0.0}


SELF = Sampler()


class Usage:
    """The master's view: the latest report of each process."""

    def __init__(self) -> None:
        self.processes: dict[str, dict[str, Any]] = {}

    def add(self, source: str, report: dict[str, Any]) -> None:
        self.processes[source] = report

    def summary(self) -> dict[str, Any]:
        procs = self.processes.values()
        users = sum(p.get("users", 0) for p in procs)
        wall = max((p["wall_s"] for p in procs), default=0.0)
        cpu = sum(p["cpu_s"] for p in procs)
        peak = sum(p["rss_mb_peak"] for p in procs)
        return {"processes": len(self.processes), "users": users, "rss_mb_peak_sum": round(peak, 1),
                "rss_mb_last_sum": round(sum(p["rss_mb_last"] for p in procs), 1), "cpu_s": round(cpu, 1),
                "wall_s": wall, "cores_used": round(cpu / wall, 2) if wall else 0.0,
                "kb_per_user": round(peak * 1024 / users, 1) if users else None, "by_process": self.processes}

    def write(self, folder: str | Path | None) -> dict[str, Any]:
        s = self.summary()
        users = s["users"]
        log.info("load generator: %d process(es), %d users, peak memory %.0f MiB (sum over processes), "
                 "CPU %.0f s over %.0f s (%.2f cores)", s["processes"], users, s["rss_mb_peak_sum"], s["cpu_s"],
                 s["wall_s"], s["cores_used"])
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / REPORT).write_text(json.dumps(s, indent=1))
        return s
