"""Concurrent audited writers in different units: how much they wait for each other.

Each writer is one connection (the owner role) that repeats a short transaction: update an account
of its own unit (an audited write, so it takes the audit lock), spend HOLD_MS as a request would
on the rest of its work, commit. With one lock for the whole country the writers queue behind each
other; with a chain per group of units they run side by side. Prints figures; asserts nothing.

    python -m loadtests.bench_audit_writers --dsn "$KNTC_ADMIN_DATABASE_URL" --writers 8 --seconds 10

Run it against a database at revision 0005 (one national lock) and at 0007 (chains) to compare.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import psycopg

HOLD_MS = 5


def _accounts(dsn: str, writers: int) -> list[int]:
    """One account per writer, each in another commune (unit ids four apart: other chains too)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        units = [r[0] for r in conn.execute(
            "SELECT id FROM kntc.unit WHERE code ~ '^X[0-9]+$' AND valid_to IS NULL ORDER BY id LIMIT %s",
            (writers,)).fetchall()]
        ids = []
        for i, unit in enumerate(units):
            row = conn.execute(
                "INSERT INTO kntc.account (username, full_name, unit_id, roles, password_hash) "
                "VALUES (%s, 'Bench writer', %s, '{reception}', 'x') "
                "ON CONFLICT (username) DO UPDATE SET full_name = excluded.full_name RETURNING id",
                (f"bench.writer{i}", unit)).fetchone()
            ids.append(row[0])
        return ids


def _writer(dsn: str, account: int, until: float, latencies: list[float], errors: list[str]) -> None:
    with psycopg.connect(dsn, options="-c lock_timeout=30000") as conn:
        n = 0
        while time.monotonic() < until:
            n += 1
            t0 = time.monotonic()
            try:
                conn.execute("UPDATE kntc.account SET full_name = %s WHERE id = %s", (f"Bench writer {n}", account))
                conn.execute("SELECT pg_sleep(%s)", (HOLD_MS / 1000,))
                conn.commit()
            except psycopg.Error as exc:
                conn.rollback()
                errors.append(type(exc).__name__)
                continue
            latencies.append((time.monotonic() - t0) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True, help="the owner role's DSN")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    with psycopg.connect(args.dsn) as conn:
        revision = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()[0]
    accounts = _accounts(args.dsn, args.writers)
    latencies: list[list[float]] = [[] for _ in accounts]
    errors: list[str] = []
    until = time.monotonic() + args.seconds
    threads = [threading.Thread(target=_writer, args=(args.dsn, a, until, lat, errors))
               for a, lat in zip(accounts, latencies, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = sorted(x for lat in latencies for x in lat)
    p95 = flat[int(0.95 * (len(flat) - 1))] if flat else float("nan")
    print(f"revision={revision} writers={args.writers} seconds={args.seconds} hold_ms={HOLD_MS} "
          f"commits={len(flat)} commits_per_s={len(flat) / args.seconds:.0f} "
          f"median_ms={statistics.median(flat) if flat else float('nan'):.1f} p95_ms={p95:.1f} errors={len(errors)}")


if __name__ == "__main__":
    main()
