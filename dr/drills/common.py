"""What every site drill shares: a writer that records acknowledged commits, a monitor that
samples pg_is_in_recovery() on every database node, deadlines, and the report.

- `Writer` commits one row per transaction through a read-write endpoint (a site's HAProxy rw
  port) and records each acknowledged commit (sequence number, time, endpoint) before the next
  one. When an endpoint fails it moves to the next one of its list; the drill changes the list
  when the topology changes. RPO is then "acknowledged commits that the surviving primary does
  not have", counted and measured in seconds.
- `PrimaryMonitor` keeps one SSH session per database node running a small loop (python3 +
  psycopg2, present on the hosts for Patroni) that prints `epoch in_recovery` every 200 ms. A node
  counts as a primary from its first `f` sample until its next sample that is not `f`; two
  primaries at once is a violation, and a drill with a violation fails.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.errors import VerificationFailed
from dr.lab import Host, Inventory, Lab
from dr.report import Report

if TYPE_CHECKING:
    import psycopg

DRILL_SCHEMA = "kntc_drill"
RW_PORT = 5000
APP_ENV = "/etc/kntc/app.env"
PGBOUNCER_INI = "/etc/pgbouncer/pgbouncer.ini"

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


class DrillFailed(VerificationFailed):
    """A drill expectation missed its deadline, or an invariant was broken."""


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Keep checking until the deadline; fail naming what was awaited and for how long."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        if time.monotonic() >= end:
            raise DrillFailed(f"{what}: chưa đạt sau {timeout:.0f} giây / not true after {timeout:.0f} seconds "
                              f"(last: {str(last)[:300]})")
        time.sleep(interval)


# ------------------------------------------------------------------ endpoints
@dataclass(frozen=True)
class Endpoint:
    name: str  # e.g. "dr-app1:5000"
    site: str
    conninfo: str


def rw_endpoints(inv: Inventory, site: str) -> list[Endpoint]:
    """The site's HAProxy read-write ports, as the drill's own role (kntc_drill: it may create its
    schema and nothing else; the owner role logs in only from the migrating host)."""
    import psycopg  # only the commands that talk SQL pay for the import (CLI start-up time)

    pw = inv.secret("pg_kntc_drill")
    return [Endpoint(f"{b.name}:{RW_PORT}", site,
                     psycopg.conninfo.make_conninfo(
                         host=b.address, port=RW_PORT, dbname="kntc", user="kntc_drill", password=pw,
                         sslmode="verify-ca", sslrootcert=str(inv.ca_file), connect_timeout=2,
                         # a cut link drops packets: give up on an unanswered commit after 3 s
                         tcp_user_timeout=3000, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
                         application_name="kntc-drill"))
            for b in inv.balancers(site)]


def try_write(ep: Endpoint) -> bool:
    """True when a write transaction commits through the endpoint (needs no table: it assigns a
    transaction id, which a standby or a fenced site refuses)."""
    import psycopg

    try:
        with psycopg.connect(ep.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_current_xact_id()")
        return True
    except psycopg.Error:
        return False


def prepare_table(ep: Endpoint) -> None:
    import psycopg

    with psycopg.connect(ep.conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {DRILL_SCHEMA}")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {DRILL_SCHEMA}.ack (run text NOT NULL, seq bigint NOT NULL, "
                     "endpoint text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                     "PRIMARY KEY (run, seq))")


def present_seqs(ep: Endpoint, run_id: str) -> set[int]:
    import psycopg

    with psycopg.connect(ep.conninfo, autocommit=True) as conn:
        return {r[0] for r in conn.execute(f"SELECT seq FROM {DRILL_SCHEMA}.ack WHERE run = %s", (run_id,))}


# ------------------------------------------------------------------ writer
@dataclass
class Ack:
    seq: int
    at: float
    endpoint: str
    site: str


class Writer(threading.Thread):
    """One INSERT per transaction; an acknowledgement is recorded before the next INSERT."""

    def __init__(self, run_id: str, endpoints: list[Endpoint], ack_file: Path, pause_s: float = 0.005) -> None:
        super().__init__(name="drill-writer", daemon=True)
        self.run_id = run_id
        self._endpoints = list(endpoints)
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self.acks: list[Ack] = []
        self.errors = 0
        self.pause_s = pause_s
        self._file = ack_file.open("w")
        self.seq = 0

    def set_endpoints(self, endpoints: list[Endpoint]) -> None:
        with self._lock:
            self._endpoints = list(endpoints)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(30)
        self._file.close()

    def acks_since(self, t: float, site: str | None = None) -> list[Ack]:
        return [a for a in list(self.acks) if a.at >= t and (site is None or a.site == site)]

    def run(self) -> None:
        import psycopg

        i = 0
        conn: psycopg.Connection | None = None
        current: Endpoint | None = None
        while not self._stop_evt.is_set():
            with self._lock:
                eps = list(self._endpoints)
            if current not in eps:
                if conn is not None:
                    conn.close()
                conn, current = None, None
            if not eps:
                time.sleep(0.05)
                continue
            ep = current or eps[i % len(eps)]
            try:
                if conn is None:
                    conn = psycopg.connect(ep.conninfo, autocommit=True)
                    current = ep
                self.seq += 1
                conn.execute(f"INSERT INTO {DRILL_SCHEMA}.ack (run, seq, endpoint) VALUES (%s, %s, %s)",
                             (self.run_id, self.seq, ep.name))
                ack = Ack(self.seq, time.time(), ep.name, ep.site)
                self.acks.append(ack)
                self._file.write(f"{ack.seq}\t{ack.at:.6f}\t{ack.endpoint}\n")
                self._file.flush()
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn, current = None, None
                i += 1
                time.sleep(0.1)
                continue
            if self.pause_s:
                time.sleep(self.pause_s)
        if conn is not None:
            conn.close()


# ------------------------------------------------------------------ monitor
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


# ------------------------------------------------------------------ site operations
def standby_cluster_settings(inv: Inventory, follow_site: str) -> list[str]:
    """edit-config settings that make a cluster follow `follow_site` through its HAProxy rw ports
    (the same shape as the patroni role's patroni_standby_cluster)."""
    hosts = ",".join(b.address for b in inv.balancers(follow_site))
    return [f"standby_cluster.host={hosts}", f"standby_cluster.port={RW_PORT}",
            "standby_cluster.create_replica_methods=[basebackup]"]


def leader(lab: Lab, site: str) -> dict[str, Any] | None:
    return next((m for m in lab.patroni_members(site) if m.get("Role") in ("Leader", "Standby Leader")), None)


def site_role(lab: Lab, site: str) -> str:
    """'primary' (a Leader), 'standby' (a Standby Leader) or 'none'."""
    m = leader(lab, site)
    if m is None or m.get("State") != "running":
        return "none"
    return "primary" if m["Role"] == "Leader" else "standby"


def replay_lsn(lab: Lab, host: str) -> int:
    return lsn_int(lab.sql(host, "SELECT pg_last_wal_replay_lsn()"))


def final_lsn(lab: Lab, host: str) -> int:
    """The end of a demoted primary's WAL: its last checkpoint (the shutdown checkpoint) or replay point."""
    row = lab.sql(host, "SELECT checkpoint_lsn, pg_last_wal_replay_lsn() FROM pg_control_checkpoint()")
    return max(lsn_int(x) for x in row.split("|") if x)


def lsn_int(text: str) -> int:
    text = text.strip()
    if not text or "/" not in text:
        return 0
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def streaming_from_remote(lab: Lab, host: str) -> bool:
    return lab.sql(host, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1"


def point_app(lab: Lab, inv: Inventory, site: str, port: int) -> None:
    """Point the site's case service at its HAProxy rw (5000) or ro (5001) port: through PgBouncer
    (role pgbouncer) its server side moves and reconnects while the service runs on; straight to
    HAProxy the service's own DSN changes and it restarts.

    The inventory still says which site is primary (kntc_primary_site): the next provisioning
    run of the app and pgbouncer roles puts the ports back, which is what the switchback expects."""
    for app in inv.select(site, "app"):
        lab.run(app, f"if [ -f {PGBOUNCER_INI} ]; then "
                     f"sed -i -E 's#( port=)500[01] #\\1{port} #' {PGBOUNCER_INI} && kntc-pgbouncer reconnect; "
                     f"else sed -i -E 's#(@[^:/@]+):500[01]/#\\1:{port}/#' {APP_ENV} && systemctl restart kntc; fi")


def app_database(lab: Lab, app: Host) -> str:
    """What the site's case service says about its database: 'primary', 'standby' or 'down'."""
    rc, out, _ = lab.run(app, "curl -sk --max-time 3 https://127.0.0.1/healthz", check=False)
    if rc != 0 or '"status":"ok"' not in out.replace(" ", ""):
        return "down"
    return "primary" if '"database":"primary"' in out.replace(" ", "") else "standby"


# ------------------------------------------------------------------ report
def new_report(kind: str, title: str, stanza: str = "-") -> Report:
    return Report(kind, title, stanza)


def rpo(acks: list[Ack], present: set[int]) -> tuple[int, float, list[int]]:
    """Acknowledged commits missing on the surviving primary: (count, seconds of commits lost, seqs)."""
    lost = sorted(a.seq for a in acks if a.seq not in present)
    if not lost:
        return 0, 0.0, []
    by_seq = {a.seq: a.at for a in acks}
    kept = [a.at for a in acks if a.seq in present and a.at < by_seq[lost[0]]]
    span = by_seq[lost[-1]] - (max(kept) if kept else by_seq[lost[0]])
    return len(lost), span, lost


def monitor_checks(report: Report, mon: PrimaryMonitor) -> None:
    v = mon.violations()
    report.check("không bao giờ có hai primary / never two primaries", not v,
                 f"{mon.sample_count()} samples on {len(mon.nodes)} nodes, longest gap "
                 f"{mon.longest_gap():.2f} s" + (f"; {'; '.join(map(str, v[:3]))}" if v else ""))
    report.figures["monitor_samples"] = mon.sample_count()
    report.figures["monitor_longest_gap_seconds"] = round(mon.longest_gap(), 2)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


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
