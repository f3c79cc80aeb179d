"""Statistics SQL: counts by kind, status, channel, month, unit and province, and overdue causes.

Every query runs in the officer's `Database.acting()` transaction, so row-level security has
already cut the rows to the officer's area and clearance: a head of unit counts their unit and
the units below it, nothing else. One scan answers all the breakdowns (GROUPING SETS).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from core_app.domain import workflow

BREAKDOWN = """
WITH scope AS (SELECT path FROM kntc.unit WHERE code = %(unit)s),
base AS (
    SELECT c.kind, c.status, c.channel, to_char(c.received_on, 'YYYY-MM') AS month,
           CASE WHEN nlevel(c.handling_unit_path) > nlevel(s.path)
                THEN subpath(c.handling_unit_path, 0, nlevel(s.path) + 1)
                ELSE c.handling_unit_path END AS child_path,
           subpath(c.handling_unit_path, 0, least(2, nlevel(c.handling_unit_path))) AS top_path,
           c.accepted_on IS NOT NULL AS accepted,
           c.resolved_on IS NOT NULL AS resolved,
           EXISTS (SELECT 1 FROM kntc.case_deadline d
                    WHERE d.case_id = c.id AND d.met_on IS NULL AND d.due_on < %(today)s) AS overdue
      FROM kntc.case_file c, scope s
     WHERE c.handling_unit_path <@ s.path
       AND c.received_on BETWEEN %(date_from)s AND %(date_to)s
)
SELECT grouping(kind) = 0 AS by_kind, grouping(status) = 0 AS by_status, grouping(channel) = 0 AS by_channel,
       grouping(month) = 0 AS by_month, grouping(child_path) = 0 AS by_child, grouping(top_path) = 0 AS by_top,
       kind, status, channel, month, child_path::text AS child_path, top_path::text AS top_path,
       count(*) AS received, count(*) FILTER (WHERE accepted) AS accepted,
       count(*) FILTER (WHERE resolved) AS resolved, count(*) FILTER (WHERE overdue) AS overdue
  FROM base
 GROUP BY GROUPING SETS ((kind), (status), (channel), (month), (child_path), (top_path), ())
"""

OVERDUE_CAUSES = """
SELECT d.step, d.rule_code, r.legal_basis, d.overdue_cause AS cause, count(*) AS cases,
       max(%(today)s::date - d.due_on) AS max_days_late
  FROM kntc.case_deadline d
  JOIN kntc.case_file c ON c.id = d.case_id
  JOIN kntc.deadline_rule r ON r.code = d.rule_code,
       (SELECT path FROM kntc.unit WHERE code = %(unit)s) s
 WHERE c.handling_unit_path <@ s.path
   AND c.received_on BETWEEN %(date_from)s AND %(date_to)s
   AND d.met_on IS NULL AND d.due_on < %(today)s
 GROUP BY d.step, d.rule_code, r.legal_basis, d.overdue_cause
 ORDER BY cases DESC, d.rule_code
"""

UNITS_BY_PATH = """
SELECT u.path::text AS path, u.code, u.name, u.level, u.kind,
       coalesce(s.code, u.code) AS current_code, coalesce(s.name, u.name) AS current_name
  FROM kntc.unit u LEFT JOIN kntc.unit s ON s.id = u.successor_id
 WHERE u.path = ANY (%s::ltree[])
"""

MEASURES = ("received", "accepted", "resolved", "overdue")


async def scope_unit(conn: AsyncConnection[Any], unit_id: int) -> dict[str, Any]:
    """The unit whose area an officer sees (a court or Party body sees its administrative unit's)."""
    cur = await conn.execute("SELECT s.code, s.name, s.path::text AS path FROM kntc.unit u "
                             "JOIN kntc.unit s ON s.id = kntc.scope_unit_id(u) WHERE u.id = %s", (unit_id,))
    row = await cur.fetchone()
    assert row is not None
    return row


async def unit_in_area(conn: AsyncConnection[Any], code: str, area_path: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT code, name, level, kind, path::text AS path FROM kntc.unit "
                             "WHERE code = %s AND path <@ %s::ltree", (code, area_path))
    return await cur.fetchone()


async def ancestors(conn: AsyncConnection[Any], path: str) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT code, name FROM kntc.unit WHERE path @> %s::ltree ORDER BY nlevel(path)", (path,))
    return await cur.fetchall()


async def status_counts_of_unit(conn: AsyncConnection[Any], unit_id: int) -> dict[str, int]:
    """Counts by status in the officer's area (a specialised body: its administrative unit's)."""
    cur = await conn.execute(
        "SELECT c.status, count(*) AS n FROM kntc.case_file c "
        "WHERE c.handling_unit_path <@ (SELECT s.path FROM kntc.unit u JOIN kntc.unit s "
        "ON s.id = kntc.scope_unit_id(u) WHERE u.id = %s) GROUP BY c.status", (unit_id,))
    return {r["status"]: r["n"] for r in await cur.fetchall()}


async def breakdown(conn: AsyncConnection[Any], unit: str, date_from: date, date_to: date,
                    today: date) -> dict[str, Any]:
    params = {"unit": unit, "date_from": date_from, "date_to": date_to, "today": today}
    rows = await (await conn.execute(BREAKDOWN, params)).fetchall()
    out: dict[str, Any] = {"totals": dict.fromkeys(MEASURES, 0), "kind": [], "status": [], "channel": [],
                           "month": [], "unit": [], "province": []}
    child_rows, top_rows = [], []
    for r in rows:
        m = {k: r[k] for k in MEASURES}
        if r["by_kind"]:
            out["kind"].append({"key": r["kind"], **m})
        elif r["by_status"]:
            out["status"].append({"key": r["status"], **m})
        elif r["by_channel"]:
            out["channel"].append({"key": r["channel"], **m})
        elif r["by_month"]:
            out["month"].append({"key": r["month"], **m})
        elif r["by_child"]:
            child_rows.append((r["child_path"], m))
        elif r["by_top"]:
            top_rows.append((r["top_path"], m))
        else:
            out["totals"] = m
    paths = [p for p, _ in child_rows + top_rows]
    units = {u["path"]: u for u in await (await conn.execute(UNITS_BY_PATH, (paths,))).fetchall()} if paths else {}
    for p, m in child_rows:
        u = units.get(p, {})
        out["unit"].append({"key": u.get("code", p), "name": u.get("name", p), "level": u.get("level"), **m})
    # Provinces of the map: a pre-2025 province counts in the current province it became.
    prov: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    for p, m in top_rows:
        u = units.get(p)
        if u is None or u["kind"] != "province":
            continue
        slot = prov[u["current_code"]]
        slot["name"] = u["current_name"]
        for k in MEASURES:
            slot[k] += m[k]
    out["province"] = [{"key": k, **v} for k, v in sorted(prov.items())]
    for key in ("kind", "status", "channel", "unit"):
        out[key].sort(key=lambda x: -x["received"])
    out["month"].sort(key=lambda x: x["key"])
    out["overdue_causes"] = await (await conn.execute(OVERDUE_CAUSES, params)).fetchall()
    return out


async def record_overdue_cause(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, step: str,
                               cause: str, today: date) -> None:
    """The holding unit writes down why a step is late; the overdue statistics group by it."""
    from core_app.domain.workflow import TransitionRefused
    from core_app.repo import cases

    case = await cases.get_case(conn, code, details=False)
    if case["handling_unit_id"] != actor.unit_id or "external_reader" in actor.roles:
        raise TransitionRefused("wrong_unit", "Chỉ đơn vị đang giải quyết mới ghi nguyên nhân quá hạn.",
                                "only the unit holding the case may record why it is late")
    cur = await conn.execute(
        "UPDATE kntc.case_deadline SET overdue_cause = %s WHERE case_id = %s AND step = %s "
        "AND met_on IS NULL AND due_on < %s RETURNING step", (cause, case["id"], step, today))
    if await cur.fetchone() is None:
        raise cases.Invalid("cause", "Bước này không quá hạn.", "this step is not overdue")
    await cases._event(conn, case["id"], actor, "overdue_cause", case["status"], case["status"], cause,
                       {"step": step})
