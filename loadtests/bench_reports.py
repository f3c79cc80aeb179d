"""Benchmark: periodic reports (the four forms) for the whole country and for a province, at national size.

`make bench-reports` (N=1,000,000) or `make bench-reports N=5000000`. Figures, not assertions: the
machine is shared. In its own database (`kntc_reports_<N>`) on the checkout's embedded cluster:

1. `kntc migrate`, `kntc seed-units`, `kntc generate --cases N` (the duplicate benchmark's generator:
   case files over every commune, with the dates of acceptance and resolution their status implies);
2. what the reports count beside the case files, made from them in SQL as the owner: each case's
   timeline (receipt, its handling decision, its resolution), the resolution time limit of every
   accepted complaint and denunciation (met, late, or still running), and the receptions behind the
   petitions received in person plus the visits that led to none (a quarter of as many again);
3. officers at the centre, at the province and at the commune holding most cases (clearance 2),
   `kntc serve`, then each form for the last closed quarter and the year, as a page, an XLSX and a PDF:
   the first request (cold) and the median of the next ones, per level.

Steps 1-2 run once per database; a later run measures again. Prints the size measured and how long
generation took. `--database` (or LOAD_DATABASE=… with make) times the reports on a database loaded
already, e.g. `kntc_national_<N>` of `make national-data`, whose case files carry the timeline, limits
and receptions the officers recorded, and skips steps 1-2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from loadtests.bench_dedup import PASSWORD, ROOT, bench_env, case_count, kntc, serving

FORMS = ("tcd", "xld", "kn", "tc")
# Its own name: the database may be one that bench-app (its bench.reception in a ward) uses too.
RECEPTION = "bench.reports.reception"
FORMATS = ("html", "xlsx", "pdf")

# Each statement one transaction; the deadlines go in slices so the audit trigger's transition table
# stays small. Times are the day's office hours in Vietnam.
FACTS = [
    ("timeline: receipts", """
INSERT INTO kntc.case_event (case_id, at, unit_id, action, to_status)
SELECT id, (received_on + time '07:30' + random() * interval '9 hours') AT TIME ZONE 'Asia/Ho_Chi_Minh',
       receiving_unit_id, 'receive', 'received'
  FROM kntc.case_file"""),
    ("timeline: handling decisions", """
INSERT INTO kntc.case_event (case_id, at, unit_id, action, from_status, to_status)
SELECT id, (coalesce(accepted_on, least(received_on + 1 + (random() * 9)::int, current_date))
            + time '07:30' + random() * interval '9 hours') AT TIME ZONE 'Asia/Ho_Chi_Minh', handling_unit_id,
       CASE status WHEN 'guided' THEN 'guide' WHEN 'filed' THEN 'file_away' WHEN 'returned' THEN 'return'
                   ELSE 'accept' END, 'in_handling',
       CASE WHEN status IN ('guided', 'filed', 'returned') THEN status ELSE 'accepted' END
  FROM kntc.case_file WHERE accepted_on IS NOT NULL OR status IN ('guided', 'filed', 'returned')"""),
    ("timeline: resolutions", """
INSERT INTO kntc.case_event (case_id, at, unit_id, action, from_status, to_status)
SELECT id, (resolved_on + time '07:30' + random() * interval '9 hours') AT TIME ZONE 'Asia/Ho_Chi_Minh',
       handling_unit_id, 'resolve', 'verifying', 'resolved'
  FROM kntc.case_file WHERE resolved_on IS NOT NULL"""),
    ("receptions behind in-person petitions", """
INSERT INTO kntc.reception (unit_id, unit_path, officer_id, received_at, visitor_name, people_count, content,
                            action_taken, case_id)
SELECT p.unit_id, u.path, %(officer)s,
       (p.received_on + time '07:30' + random() * interval '9 hours') AT TIME ZONE 'Asia/Ho_Chi_Minh',
       'Khách đến trình bày', p.people_count, 'Công dân trình bày nội dung đơn', 'recorded', p.case_id
  FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.channel = 'in_person'"""),
    ("receptions that led to no case", """
INSERT INTO kntc.reception (unit_id, unit_path, officer_id, received_at, visitor_name, people_count, content,
                            action_taken)
SELECT p.unit_id, u.path, %(officer)s,
       (p.received_on + time '07:30' + random() * interval '9 hours') AT TIME ZONE 'Asia/Ho_Chi_Minh',
       'Khách đến hỏi', CASE WHEN random() < 0.05 THEN 5 + (random() * 25)::int ELSE 1 END,
       'Công dân hỏi thủ tục', CASE WHEN random() < 0.6 THEN 'guided' ELSE 'transferred' END
  FROM kntc.petition p JOIN kntc.unit u ON u.id = p.unit_id WHERE p.channel = 'in_person' AND random() < 0.25"""),
]
DEADLINES = """
INSERT INTO kntc.case_deadline (case_id, step, rule_code, starts_on, due_on, met_on, ended_by)
SELECT id, 'resolve', CASE kind WHEN 'complaint' THEN 'KN1-RESOLVE' ELSE 'TC-RESOLVE' END, accepted_on,
       accepted_on + CASE WHEN kind = 'complaint' AND is_complex THEN 45 ELSE 30 END
                   + CASE WHEN kind = 'denunciation' AND random() < 0.1 THEN 30 ELSE 0 END,
       resolved_on, CASE WHEN resolved_on IS NOT NULL THEN 'resolve' END
  FROM kntc.case_file
 WHERE kind IN ('complaint', 'denunciation') AND accepted_on IS NOT NULL
   AND id >= %(lo)s::uuid AND (%(hi)s::uuid IS NULL OR id < %(hi)s::uuid)"""
SLICES = 16


# The province holding most case files, and its commune holding most: the levels timed below the country.
BUSIEST = """
WITH per_unit AS (SELECT handling_unit_id AS id, count(*) AS n FROM kntc.case_file GROUP BY 1),
province AS (SELECT p.code, p.path, sum(x.n) AS n
               FROM per_unit x JOIN kntc.unit u ON u.id = x.id
               JOIN kntc.unit p ON p.kind = 'province' AND p.valid_to IS NULL AND u.path <@ p.path
              GROUP BY p.code, p.path ORDER BY n DESC LIMIT 1)
SELECT province.code AS province,
       (SELECT u.code FROM per_unit x JOIN kntc.unit u ON u.id = x.id
         WHERE u.kind = 'commune' AND u.path <@ province.path ORDER BY x.n DESC LIMIT 1) AS commune
  FROM province
"""


def owner(env: dict[str, str]) -> Any:
    import psycopg
    from psycopg.rows import dict_row

    return psycopg.connect(env["KNTC_ADMIN_DATABASE_URL"], autocommit=True, row_factory=dict_row)


def load_facts(env: dict[str, str]) -> float:
    """The timeline, time limits and receptions of the generated case files (once per database)."""
    with owner(env) as conn:
        if conn.execute("SELECT 1 FROM kntc.case_event WHERE action = 'accept' LIMIT 1").fetchone():
            return 0.0
        officer = conn.execute("SELECT id FROM kntc.account WHERE username = %s", (RECEPTION,)).fetchone()["id"]
        conn.execute("SET statement_timeout = 0")
        t0 = time.monotonic()
        for label, sql in FACTS:
            t = time.monotonic()
            conn.execute(sql, {"officer": officer})
            print(f"  {label}: {time.monotonic() - t:.0f} s", flush=True)
        t = time.monotonic()
        bounds = [f"{i * 256 // SLICES:02x}" + "0" * 6 + "-0000-0000-0000-000000000000" for i in range(SLICES)]
        for lo, hi in zip(bounds, [*bounds[1:], None], strict=True):
            conn.execute(DEADLINES, {"lo": lo, "hi": hi})
        print(f"  resolution time limits: {time.monotonic() - t:.0f} s", flush=True)
        for table in ("case_event", "case_deadline", "reception"):
            conn.execute(f"VACUUM (ANALYZE) kntc.{table}")
        return time.monotonic() - t0


def sizes(env: dict[str, str]) -> dict[str, int]:
    with owner(env) as conn:
        out = {}
        for table in ("case_file", "petition", "reception", "case_event", "case_deadline"):
            out[table] = conn.execute(f"SELECT count(*) AS n FROM kntc.{table}").fetchone()["n"]
        out["bytes"] = conn.execute("SELECT pg_database_size(current_database()) AS n").fetchone()["n"]
        busiest = conn.execute(BUSIEST).fetchone()
        out["province"], out["commune"] = busiest["province"], busiest["commune"]
    return out


class Officer:
    def __init__(self, base: str, username: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=300)
        r = self.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def timed(self, url: str) -> tuple[float, int]:
        """Milliseconds and bytes of one answer; a refusal (the report's own time limit, say) is -status."""
        t0 = time.perf_counter()
        r = self.client.get(url)
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code != 200:
            # One form past the report's time limit is a figure too: say it and time the rest.
            print(f"bench: GET {url} -> {r.status_code} after {ms:.0f} ms: {r.text[-200:]}", flush=True)
            return ms, -r.status_code
        return ms, len(r.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="timed requests after the first, per form and format")
    ap.add_argument("--root", type=Path, default=ROOT / ".data" / "local")
    ap.add_argument("--port", type=int, default=55432)
    ap.add_argument("--seed", type=int, default=20180315)
    ap.add_argument("--period", action="append", help="periods to time (default: the last closed quarter, the year)")
    ap.add_argument("--database", default=os.environ.get("KNTC_LOAD_DATABASE") or None,
                    help="a database loaded already, e.g. kntc_national_5000000 (make national-data): no generation")
    args = ap.parse_args()
    database = args.database or f"kntc_reports_{args.cases}"
    env = bench_env(args.root.resolve(), args.port, database)
    print(f"database {database} on 127.0.0.1:{args.port}", flush=True)
    if args.database and not case_count(env):
        raise SystemExit(f"bench: {database} holds no case files: load it first (make national-data)")
    kntc("migrate", env=env)
    kntc("seed-units", env=env)
    accounts = {"country": "VN", "province": None, "commune": None}
    kntc("create-account", "--username", RECEPTION, "--full-name", "Cán bộ tiếp dân đo tải", "--unit", "VN",
         "--role", "reception", env={**env, "KNTC_NEW_PASSWORD": PASSWORD})
    have = case_count(env)
    if have < args.cases and not args.database:
        if have:
            raise SystemExit(f"bench: {database} holds {have} case files, fewer than {args.cases}: drop it first")
        t0 = time.monotonic()
        kntc("generate", "--cases", str(args.cases), "--seed", str(args.seed), env=env, stream=True)
        print(f"generation (kntc generate): {time.monotonic() - t0:.0f} s", flush=True)
    facts_s = load_facts(env)
    if facts_s:
        print(f"timeline, time limits and receptions: {facts_s:.0f} s", flush=True)
    size = sizes(env)
    accounts["province"], accounts["commune"] = size["province"], size["commune"]
    for level, unit in accounts.items():
        kntc("create-account", "--username", f"bench.report.{level}", "--full-name", f"Lãnh đạo đo tải {level}",
             "--unit", str(unit), "--role", "head", "--clearance", "2", env={**env, "KNTC_NEW_PASSWORD": PASSWORD})
    print(f"\nmeasured size: {size['case_file']:,} case files, {size['petition']:,} petitions, "
          f"{size['reception']:,} receptions, {size['case_event']:,} timeline events, {size['case_deadline']:,} "
          f"time limits; database {size['bytes'] / 2**30:.1f} GiB", flush=True)

    with serving(env) as base:
        periods = args.period or [last_quarter(), last_year()]
        run(base, accounts, periods, args.runs)


def last_quarter() -> str:
    from datetime import date, timedelta

    # The quarter that closed last under the circular's cut-off (the 14th of March, June, September,
    # December): its data is complete, as when a unit reports it.
    d = date.today() - timedelta(days=14)
    q = (d.month - 1) // 3
    return f"{d.year}-Q{q}" if q else f"{d.year - 1}-Q4"


def last_year() -> str:
    from datetime import date

    return str(date.today().year - 1)


def run(base: str, units: dict[str, str | None], periods: list[str], runs: int) -> None:
    print(f"\nreport generation through HTTP (`kntc serve`, 2 workers), ms: first request, then median of {runs}")
    print(f"{'level':<9} {'unit':<8} {'period':<8} {'form':<5} " + "  ".join(f"{f:>17}" for f in FORMATS))
    for level in units:
        # Signed in when its turn comes: at 5 million case files the country's forms take longer than
        # a session may stay idle.
        officer = Officer(base, f"bench.report.{level}")
        for period in periods:
            for form in FORMS:
                cells = []
                for fmt in FORMATS:
                    url = f"/app/reports?form={form}&period={period}&unit={units[level]}&format={fmt}"
                    first, size = officer.timed(url)
                    if size < 0:
                        # Refused once, it is refused again: the time it took to say so is the figure.
                        cells.append(f"{-size} at {first / 1000:.0f} s")
                        continue
                    rest = [officer.timed(url)[0] for _ in range(runs)]
                    cells.append(f"{first:7.0f} /{statistics.median(rest):7.0f}")
                print(f"{level:<9} {units[level]!s:<8} {period:<8} {form:<5} " + "  ".join(f"{c:>17}" for c in cells),
                      flush=True)
        # The list behind the biggest figure of the quarter (its first page) and a page deep into it.
        url = f"/app/reports/cases?form=xld&col=petitions&period={periods[0]}&unit={units[level]}"
        ms, _ = officer.timed(url)
        print(f"{level:<9} list behind 01/XLD (1), first page of 50: {ms:.0f} ms", flush=True)


if __name__ == "__main__":
    sys.exit(main())
