"""Where the database's time went during a load run: `pg_stat_statements` on the site's leader,
reset before the run and read after it, the costliest statements first.

Per tier, `tiers` says how much CPU PostgreSQL used per request; this says on what. The figures
are the server's own: execution time per statement, waits on locks and I/O included, and planning
time, which the reset turns on (`pg_stat_statements.track_planning`, kept on the leader from then:
through PgBouncer 1.18 in transaction mode no statement is prepared, every call is planned again).

The list holds the statements of the case service's roles only; Patroni's, the exporters' and the
backups' own queries count only in the totals, which say how much of the leader's time the case
service's statements explain.

On the lab the leader is the DC's Patroni leader, reached as the `postgres` user on its host
(`dr.lab`); the extension is created in the case service's database when it is missing (the
library is preloaded by the patroni role).

    python -m loadtests.statements reset           # before a run
    python -m loadtests.statements top --limit 15  # after it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtests.arguments import at_least_one

DATABASE = "kntc"
# The roles of the case service's requests (the app's officers and the login and set-up routes).
ROLES = ("kntc_app", "kntc_login")

_OURS = f"r.rolname IN ({', '.join(repr(r) for r in ROLES)})"

# ALTER SYSTEM runs outside a transaction block, so alone; the reload reaches every backend before
# its next statement.
RESET = ("ALTER SYSTEM SET pg_stat_statements.track_planning = on",
         "SELECT pg_reload_conf()",
         "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();")
TOP = f"""
SELECT coalesce(json_agg(t ORDER BY t.total_ms DESC), '[]')
  FROM (SELECT r.rolname AS role, s.calls,
               round((s.total_exec_time + s.total_plan_time)::numeric, 1) AS total_ms,
               round(((s.total_exec_time + s.total_plan_time) / greatest(s.calls, 1))::numeric, 3) AS ms_per_call,
               round((s.total_plan_time / greatest(s.calls, 1))::numeric, 3) AS plan_ms_per_call,
               s.rows,
               s.shared_blks_hit + s.shared_blks_read AS blocks,
               s.shared_blks_read AS blocks_read,
               left(regexp_replace(s.query, '\\s+', ' ', 'g'), 400) AS query
          FROM pg_stat_statements s
          JOIN pg_roles r ON r.oid = s.userid
          JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = '{DATABASE}' AND {_OURS}
         ORDER BY s.total_exec_time + s.total_plan_time DESC
         LIMIT %(limit)s) t
"""
# Every statement of the database since the reset, the case service's and the others' (Patroni,
# the exporters, the backups): how much of the leader's time the listed statements explain.
TOTALS = f"""
SELECT json_build_object(
         'case_service_ms', round(coalesce(sum(s.total_exec_time + s.total_plan_time) FILTER (WHERE {_OURS}),
                                           0)::numeric, 1),
         'case_service_calls', coalesce(sum(s.calls) FILTER (WHERE {_OURS}), 0),
         'case_service_plan_ms', round(coalesce(sum(s.total_plan_time) FILTER (WHERE {_OURS}), 0)::numeric, 1),
         'every_role_ms', round(coalesce(sum(s.total_exec_time + s.total_plan_time), 0)::numeric, 1))
  FROM pg_stat_statements s
  JOIN pg_roles r ON r.oid = s.userid
  JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = '{DATABASE}'
"""
# Statements run inside functions too (the duplicate check's PL/pgSQL, the triggers' SQL functions):
# PostgreSQL plans them while the statement that called them runs, so their planning is part of its
# time, and counted only when every level is tracked.
EVERY_LEVEL = "ALTER SYSTEM SET pg_stat_statements.track = 'all'"
# Every role's statements since the reset in the database this is read in, for one where nothing but
# the measured requests runs (the benchmark's own cluster): the time of the statements sent (what ran
# inside them is part of it) and all planning, at every level. Inside a SECURITY DEFINER function a
# statement is its owner's, so no role is left out.
SPENT = """
SELECT json_build_object(
         'statements_ms', round(coalesce(sum(s.total_exec_time + s.total_plan_time) FILTER (WHERE s.toplevel),
                                         0)::numeric, 1),
         'planning_ms', round(coalesce(sum(s.total_plan_time), 0)::numeric, 1))
  FROM pg_stat_statements s
  JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = current_database()
"""
Query = Callable[[str], str]  # one SQL text -> psql's unaligned output, as the superuser, in DATABASE


class NoLeader(RuntimeError):
    """No database to read the statements from."""


def lab_query(site: str = "dc", inventory: Path | None = None) -> Query:
    """SQL as `postgres` on the site's Patroni leader (found now; a failover during the run moves it)."""
    from dr.errors import DrError
    from dr.lab import Lab, load_inventory

    try:
        lab = Lab(load_inventory(inventory))
        leader = next(m["Member"] for m in lab.patroni_members(site) if m.get("Role") == "Leader")
    except (DrError, OSError, StopIteration) as exc:
        raise NoLeader(f"no leader of site {site} to read the statements from: {exc}") from exc
    return lambda sql: lab.sql(leader, sql, db=DATABASE)


def reset(query: Query, every_level: bool = False) -> None:
    for sql in ((EVERY_LEVEL,) if every_level else ()) + RESET:
        query(sql)


def spent(query: Query) -> dict[str, float]:
    """Milliseconds since the reset: the statements sent, and the planning at every level."""
    return {k: float(v) for k, v in json.loads(query(SPENT) or "{}").items()}


def top(query: Query, limit: int = 20) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(query(TOP % {"limit": int(limit)}) or "[]")
    total = sum(float(r["total_ms"]) for r in rows) or 1.0
    for r in rows:
        r["share_of_listed"] = round(float(r["total_ms"]) / total, 3)
    return rows


def totals(query: Query) -> dict[str, float]:
    """The time of every statement since the reset: the case service's roles', and every role's."""
    return {k: float(v) for k, v in json.loads(query(TOTALS) or "{}").items()}


def write(folder: Path, rows: list[dict[str, Any]], source: str,
          total: dict[str, float] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"source": source, "statements": rows}
    if total:
        doc["totals"] = total
    (folder / "statements.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    return doc


def markdown(doc: dict[str, Any], requests: int | None = None, shown: int = 12) -> list[str]:
    """The summary's section: the costliest statements, with their time per request of the run."""
    L = ["## Câu lệnh tốn nhất / Costliest statements",
         f"Source: {doc['source']}; `pg_stat_statements` reset before the run; planning and execution time "
         "(waits included) of the case service's roles.", "",
         ]
    t = doc.get("totals")
    if t and requests:
        planned = (f", of which planning {t['case_service_plan_ms'] / requests:.3f} ms"
                   if "case_service_plan_ms" in t else "")
        L += [f"Every statement of the case service: {t['case_service_ms'] / requests:.3f} ms per request{planned} "
              f"({t['case_service_calls'] / requests:.1f} statements per request); every role's, Patroni's and the "
              f"exporters' included: {t['every_role_ms'] / requests:.3f} ms per request. Beside the leader's CPU per "
              "request (tiers above), the rest is the server's own work: WAL, replication, archiving, vacuum.", ""]
    L += ["| role | calls | ms / call | planning ms / call | total s | ms per request | statement |",
          "|---|---:|---:|---:|---:|---:|---|"]
    for r in doc["statements"][:shown]:
        per = f"{float(r['total_ms']) / requests:.3f}" if requests else "–"
        plan = f"{float(r['plan_ms_per_call']):.3f}" if "plan_ms_per_call" in r else "–"
        text = r["query"][:140].replace("|", "\\|")
        L.append(f"| {r['role']} | {r['calls']} | {float(r['ms_per_call']):.3f} | {plan} | "
                 f"{float(r['total_ms']) / 1000:.1f} | {per} | `{text}` |")
    L.append("")
    return L


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pg_stat_statements on the lab's DC leader: reset, or the top.")
    p.add_argument("action", choices=("reset", "top"))
    p.add_argument("--site", default="dc", help="the site whose leader is read (default dc)")
    p.add_argument("--limit", type=at_least_one("statements"), default=20, help="how many statements (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--inventory", type=Path, help="the lab's Ansible inventory (default: the lab's own)")
    args = p.parse_args(argv)
    from dr.errors import DrError

    try:
        query = lab_query(args.site, args.inventory)
        if args.action == "reset":
            reset(query)
            print(f"statements: pg_stat_statements reset on the {args.site} leader")
            return 0
        rows = top(query, args.limit)
        total = totals(query)
    except (NoLeader, DrError) as exc:
        print(f"statements: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"statements": rows, "totals": total}, indent=1, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r['calls']:>9} {float(r['ms_per_call']):9.3f} ms (planning {float(r['plan_ms_per_call']):.3f}) "
              f"{float(r['total_ms']) / 1000:8.1f} s {r['role']:10} {r['query'][:100]}")
    print(f"every statement: the case service's {total['case_service_ms'] / 1000:.1f} s in "
          f"{total['case_service_calls']:.0f} calls, of which planning {total['case_service_plan_ms'] / 1000:.1f} s; "
          f"every role's {total['every_role_ms'] / 1000:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
