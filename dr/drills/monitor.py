"""Never two primaries: one SSH session per database node runs a small loop (python3 + psycopg2,
present on the hosts for Patroni) that prints `epoch in_recovery` every 200 ms. A node counts as a
primary from its first `f` sample until its next sample that is not `f`; two primaries at once is a
violation, and a drill with a violation fails.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dr.lab import Host, Inventory
from dr.report import Report
from dr.sites.state import wait_until

_MONITOR_LOOP = """
import sys, time
import psycopg2
conn = None
while True:
    t = time.time()
    try:
        if conn is None:
            conn = psycopg2.connect("host=/var/run/postgresql dbname=postgres connect_timeout=1")
            conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT pg_is_in_recovery()")
        s = "t" if cur.fetchone()[0] else "f"
    except Exception:
        s = "down"
        try:
            conn.close()
        except Exception:
            pass
        conn = None
    sys.stdout.write("%.3f %s\\n" % (t, s))
    sys.stdout.flush()
    time.sleep(0.2)
"""


@dataclass
class Violation:
    start: float
    end: float
    nodes: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{' + '.join(self.nodes)} cùng là primary / both primary from "
                f"{datetime.fromtimestamp(self.start, UTC).isoformat(timespec='milliseconds')} for "
                f"{self.end - self.start:.2f} s")


@dataclass
class NodeSamples:
    host: Host
    samples: list[tuple[float, str]] = field(default_factory=list)


def primary_intervals(samples: list[tuple[float, str]]) -> list[tuple[float, float]]:
    """Intervals during which a node may have been a primary: from a 'f' sample to the next other sample.

    The interval is extended to the next sample that says otherwise (or the last sample), so the
    check errs towards reporting an overlap, never towards hiding one."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for t, s in samples:
        if s == "f" and start is None:
            start = t
        elif s != "f" and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, samples[-1][0]))
    return out


def overlaps(per_node: dict[str, list[tuple[float, str]]]) -> list[Violation]:
    events: list[tuple[float, int, str]] = []
    for node, samples in per_node.items():
        for a, b in primary_intervals(samples):
            events += [(a, 1, node), (b, -1, node)]
    # at equal times, ends before starts: touching intervals are not an overlap
    events.sort(key=lambda e: (e[0], e[1]))
    active: set[str] = set()
    found: list[Violation] = []
    opened: float | None = None
    for t, kind, node in events:
        if kind == 1:
            active.add(node)
            if len(active) == 2:
                opened = t
        else:
            if len(active) >= 2 and opened is not None and t > opened:
                found.append(Violation(opened, t, tuple(sorted(active))))
            active.discard(node)
            if len(active) < 2:
                opened = None
    return found


class PrimaryMonitor:
    """Samples pg_is_in_recovery() on every database node of both sites for the whole drill."""

    def __init__(self, inv: Inventory) -> None:
        self.nodes = {h.name: NodeSamples(h) for s in inv.sites for h in inv.db(s)}
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for ns in self.nodes.values():
            cmd = ns.host.root("cd /tmp && exec runuser -u postgres -- python3 -u -c " + _shell_quote(_MONITOR_LOOP))
            p = subprocess.Popen(ns.host.ssh_argv(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            self._procs.append(p)
            t = threading.Thread(target=self._read, args=(p, ns), daemon=True, name=f"monitor-{ns.host.name}")
            t.start()
            self._threads.append(t)

    @staticmethod
    def _read(p: subprocess.Popen[str], ns: NodeSamples) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            parts = line.split()
            if len(parts) == 2:
                ns.samples.append((float(parts[0]), parts[1]))

    def wait_sampling(self, timeout: float = 30) -> None:
        wait_until(lambda: all(ns.samples for ns in self.nodes.values()), timeout,
                   "mọi nút được giám sát / every database node sampled")

    def primaries_now(self, max_age: float = 2.0) -> list[str]:
        now = time.time()
        return [n for n, ns in self.nodes.items() if ns.samples and ns.samples[-1][1] == "f"
                and now - ns.samples[-1][0] < max_age]

    def stop(self) -> None:
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def violations(self) -> list[Violation]:
        return overlaps({n: list(ns.samples) for n, ns in self.nodes.items()})

    def longest_gap(self) -> float:
        gaps = [b[0] - a[0] for ns in self.nodes.values() for a, b in zip(ns.samples, ns.samples[1:], strict=False)]
        return max(gaps, default=0.0)

    def sample_count(self) -> int:
        return sum(len(ns.samples) for ns in self.nodes.values())


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def monitor_checks(report: Report, mon: PrimaryMonitor) -> None:
    v = mon.violations()
    report.check("không bao giờ có hai primary / never two primaries", not v,
                 f"{mon.sample_count()} samples on {len(mon.nodes)} nodes, longest gap "
                 f"{mon.longest_gap():.2f} s" + (f"; {'; '.join(map(str, v[:3]))}" if v else ""))
    report.figures["monitor_samples"] = mon.sample_count()
    report.figures["monitor_longest_gap_seconds"] = round(mon.longest_gap(), 2)
