"""Loading the national data set (`core_app.dedup.national`): COPY writers, deferred indexes, a resumable run.

The rows go in as the owner role through COPY, one transaction per bundle (the case files of one
audit chain with everything that belongs to them), from `writers` connections at once while
Python makes the next bundles. A bundle already committed by an earlier run of the same seed is
recognised by its first case file and skipped, so a stopped run continues where it stopped.

A large load drops the secondary indexes of the tables it fills and builds them at the end, as
pg_restore does: one sorted build is far cheaper than millions of insertions into trigram GIN
indexes. Primary keys, unique constraints, foreign keys, checks, row-level security and every
trigger stay in place; so does the one index a trigger reads on each row (`KEEP_INDEXES`). The
definitions wait in `kntc_bulk_load.deferred_index` until their index exists again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from core_app.dedup.generator import load_units
from core_app.dedup.national import KEEP_INDEXES, LOADED, TABLES, Bundle, NationalGenerator, Staff
from core_app.repo.rules import load_rulebook_sync

Connect = Callable[[], Any]

DEFER_FROM = 100_000  # case files: below this, inserting into the indexes costs less than building them

SECONDARY = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
  FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
 WHERE t.relnamespace = 'kntc'::regnamespace AND t.relname = ANY (%(tables)s)
   AND NOT i.indisprimary AND NOT i.indisunique
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
   AND i.indexrelid::regclass::text <> ALL (%(keep)s)
"""
PENDING = """
SELECT d.name, d.definition FROM kntc_bulk_load.deferred_index d
  JOIN pg_class t ON t.oid = d.table_oid ORDER BY pg_relation_size(t.oid) DESC, d.name
"""
# From the codes stored, not from the generator's counters: a run that resumes one finished
# before generates codes it then skips, and must not move a counter past them.
COUNTERS = """
INSERT INTO kntc.case_code_counter AS c (unit_id, year, last_seq)
SELECT receiving_unit_id, extract(year FROM received_on)::int, max(substring(code FROM '([0-9]+)$')::int)
  FROM kntc.case_file GROUP BY 1, 2
    ON CONFLICT (unit_id, year) DO UPDATE SET last_seq = greatest(c.last_seq, EXCLUDED.last_seq)
 WHERE c.last_seq < EXCLUDED.last_seq
"""


class NationalError(RuntimeError):
    """Why the national data set cannot be loaded here, in one line."""


@dataclass
class Outcome:
    cases: int = 0
    skipped: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {t: 0 for t, _ in TABLES})
    deferred: int = 0
    load_s: float = 0.0
    index_s: float = 0.0
    vacuum_s: float = 0.0
    spent: dict[str, float] = field(default_factory=dict)  # writers' seconds per table's COPY, and commits


def bulk_session(conn: Any) -> None:
    # An operator's bulk job: no statement limit, and a writer may wait for the other writer's
    # transaction on the same audit chain.
    conn.execute("SET statement_timeout = 0")
    conn.execute("SET lock_timeout = 0")
    conn.execute("SET maintenance_work_mem = '512MB'")


def defer_indexes(conn: Any) -> int:
    """Drop the secondary indexes of the loaded tables, keeping their definitions; returns how many."""
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS kntc_bulk_load")
        conn.execute("CREATE TABLE IF NOT EXISTS kntc_bulk_load.deferred_index "
                     "(name text PRIMARY KEY, table_oid oid NOT NULL, definition text NOT NULL)")
        rows = conn.execute(SECONDARY, {"tables": list(LOADED), "keep": [f"kntc.{k}" for k in KEEP_INDEXES]}
                            ).fetchall()
        for r in rows:
            conn.execute("INSERT INTO kntc_bulk_load.deferred_index SELECT %s, indrelid, %s FROM pg_index "
                         "WHERE indexrelid = %s::regclass ON CONFLICT DO NOTHING", (r["name"], r["definition"],
                                                                                    r["name"]))
            conn.execute(f"DROP INDEX {r['name']}")
    return len(rows)


def pending_indexes(conn: Any) -> list[dict[str, Any]]:
    if conn.execute("SELECT to_regclass('kntc_bulk_load.deferred_index') AS t").fetchone()["t"] is None:
        return []
    return conn.execute(PENDING).fetchall()


def build_indexes(connect: Connect, workers: int, on_built: Callable[[str], None]) -> int:
    """Build every deferred index (largest tables first, `workers` at once); returns how many."""
    with connect() as conn:
        todo: queue.Queue[dict[str, Any]] = queue.Queue()
        pending = pending_indexes(conn)
        for p in pending:
            todo.put(p)
    failure: list[BaseException] = []

    def worker() -> None:
        try:
            with connect() as conn:
                bulk_session(conn)
                while not failure:
                    try:
                        p = todo.get_nowait()
                    except queue.Empty:
                        return
                    with conn.transaction():
                        conn.execute(p["definition"].replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))
                        conn.execute("DELETE FROM kntc_bulk_load.deferred_index WHERE name = %s", (p["name"],))
                    on_built(p["name"])
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)

    threads = [threading.Thread(target=worker, name=f"kntc-index-{k}", daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        raise failure[0]
    with connect() as conn:
        if not pending_indexes(conn):
            conn.execute("DROP SCHEMA IF EXISTS kntc_bulk_load CASCADE")
    return len(pending)


def write(conn: Any, bundle: Bundle, spent: dict[str, float]) -> bool:
    """One bundle in one transaction; False when an earlier run committed it already. Adds the
    seconds each table's COPY took (its triggers included) to `spent`, the commit's to "commit"."""
    first = bundle.rows["case_file"][0][0]
    if conn.execute("SELECT 1 FROM kntc.case_file WHERE id = %s", (first,)).fetchone():
        return False
    with conn.cursor() as cur:
        t = time.perf_counter()
        with conn.transaction():
            for table, cols in TABLES:
                rows = bundle.rows[table]
                if not rows:
                    continue
                with cur.copy(f"COPY kntc.{table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                now = time.perf_counter()
                spent[table] = spent.get(table, 0.0) + now - t
                t = now
        # The deferred checks (the intake triggers) run at commit.
        spent["commit"] = spent.get("commit", 0.0) + time.perf_counter() - t
    return True


def load(connect: Connect, bundles: Iterator[Bundle], writers: int, on_bundle: Callable[[Bundle, bool], None],
         spent: dict[str, float]) -> None:
    """COPY the bundles through `writers` connections while the caller's thread makes the next ones."""
    q: queue.Queue[Bundle | None] = queue.Queue(maxsize=2 * writers)
    failure: list[BaseException] = []

    def writer() -> None:
        mine: dict[str, float] = {}
        try:
            with connect() as conn:
                bulk_session(conn)
                while (bundle := q.get()) is not None:
                    on_bundle(bundle, write(conn, bundle, mine))
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)
            while q.get() is not None:
                pass
        finally:
            with lock:
                for k, v in mine.items():
                    spent[k] = spent.get(k, 0.0) + v

    lock = threading.Lock()
    threads = [threading.Thread(target=writer, name=f"kntc-copy-{k}", daemon=True) for k in range(writers)]
    for t in threads:
        t.start()
    try:
        for bundle in bundles:
            if failure:
                break
            q.put(bundle)
    finally:
        for _ in threads:
            q.put(None)
        for t in threads:
            t.join()
    if failure:
        raise failure[0]


def national(connect: Connect, n: int, seed: int, today: date, *, chunk: int = 1000, writers: int = 2,
             province: str | None = None, defer: bool | None = None,
             on_cases: Callable[[int], None] = lambda k: None, on_phase: Callable[[str, int], None] = lambda p, k: None,
             on_index: Callable[[str], None] = lambda name: None) -> Outcome:
    """Generate and load `n` case files with their work (see core_app.dedup.national)."""
    out = Outcome()
    with connect() as conn:
        bulk_session(conn)
        staff = Staff.load(conn)
        if not staff.by_unit:
            raise NationalError("no officer accounts in this database: import the roster first "
                                "(kntc accounts import, or python -m loadtests.national)")
        communes, bodies, central = load_units(conn)
        if province:
            prov = conn.execute("SELECT id FROM kntc.unit WHERE code = %s AND valid_to IS NULL", (province,)).fetchone()
            if prov is None or prov["id"] not in bodies:
                raise NationalError(f"no current province with code {province!r} (e.g. T01)")
            communes = [c for c in communes if c.province and c.province.id == prov["id"]]
            central = bodies[prov["id"]]  # a one-province data set stays in the province
        counters = {(r["unit_id"], r["year"]): r["last_seq"]
                    for r in conn.execute("SELECT unit_id, year, last_seq FROM kntc.case_code_counter")}
        paths = {r["id"]: r["path"] for r in conn.execute("SELECT id, path::text AS path FROM kntc.unit")}
        gen = NationalGenerator(communes, bodies, central, seed, today, counters, staff, load_rulebook_sync(conn),
                                paths)
        if defer if defer is not None else n >= DEFER_FROM:
            out.deferred = defer_indexes(conn)
    out.deferred = max(out.deferred, len(_pending(connect)))
    lock = threading.Lock()

    def done(bundle: Bundle, written: bool) -> None:
        with lock:
            out.cases += bundle.cases
            if written:
                for table, rows in bundle.rows.items():
                    out.rows[table] += len(rows)
            else:
                out.skipped += bundle.cases
        on_cases(bundle.cases)

    t0 = time.monotonic()
    load(connect, gen.bundles(n, chunk), writers, done, out.spent)
    with connect() as conn:
        # Codes made by kntc.next_case_code later must follow the generated ones.
        bulk_session(conn)
        conn.execute(COUNTERS)
    out.load_s = time.monotonic() - t0
    t0 = time.monotonic()
    on_phase("indexes", out.deferred)
    build_indexes(connect, writers, on_index)
    out.index_s = time.monotonic() - t0
    t0 = time.monotonic()
    on_phase("vacuum", len(LOADED))
    with connect() as conn:
        conn.autocommit = True
        bulk_session(conn)
        for table in LOADED:
            conn.execute(f"VACUUM (ANALYZE) kntc.{table}")
            on_index(table)
    out.vacuum_s = time.monotonic() - t0
    return out


def _pending(connect: Connect) -> list[dict[str, Any]]:
    with connect() as conn:
        return pending_indexes(conn)
