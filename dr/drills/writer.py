"""The drills' writer: one INSERT per transaction through a site's read-write endpoints, each
acknowledged commit recorded (sequence number, time, endpoint) before the next one. When an
endpoint fails it moves to the next of its list; the drill changes the list when the topology
changes. RPO is then "acknowledged commits that the surviving primary does not have", counted and
measured in seconds.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dr.sites.state import Endpoint

if TYPE_CHECKING:
    import psycopg

DRILL_SCHEMA = "kntc_drill"


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


def rpo(acks: list[Ack], present: set[int]) -> tuple[int, float, list[int]]:
    """Acknowledged commits missing on the surviving primary: (count, seconds of commits lost, seqs)."""
    lost = sorted(a.seq for a in acks if a.seq not in present)
    if not lost:
        return 0, 0.0, []
    by_seq = {a.seq: a.at for a in acks}
    kept = [a.at for a in acks if a.seq in present and a.at < by_seq[lost[0]]]
    span = by_seq[lost[-1]] - (max(kept) if kept else by_seq[lost[0]])
    return len(lost), span, lost
