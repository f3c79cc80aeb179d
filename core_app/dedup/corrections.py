"""The duty to correct wrong data: a discrepancy is reported, the unit holding the case corrects
it with a reason, and a correction later than the DATA-CORRECT limit (5 working days from the
report, kntc.deadline_rule) is flagged late and listed per unit.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app.domain import workflow
from core_app.domain.deadlines import Rule, due_for
from core_app.repo import cases
from core_app.repo.cases import Invalid, NotFound, RuleBook


def _rule(book: RuleBook, case: dict[str, Any]) -> Rule:
    rule = book.find(case["kind"], "correct_data", case["complaint_round"])
    if rule is None:
        raise Invalid("rule", "Chưa có quy định thời hạn sửa dữ liệu (DATA-CORRECT).",
                      "no data-correction rule (DATA-CORRECT) in kntc.deadline_rule")
    return rule


async def report(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, code: str,
                 data: dict[str, Any], today: date) -> dict[str, Any]:
    if "external_reader" in actor.roles:
        raise Invalid("role", "Tài khoản chỉ đọc không báo cáo sai lệch được.",
                      "a read-only account cannot report discrepancies")
    case = await cases.get_case(conn, code, details=False)
    reported_on: date = data.get("reported_on") or today
    if reported_on > today:
        raise Invalid("reported_on", "Ngày phát hiện không thể ở tương lai.", "the report date cannot be in the future")
    rule = _rule(book, case)
    due = due_for(rule, reported_on, book.calendar)
    cur = await conn.execute(
        "INSERT INTO kntc.discrepancy (case_id, unit_id, unit_path, reported_on, reported_by, reporter_unit_id, "
        "description, field, rule_code, due_on) SELECT %s, u.id, u.path, %s, %s, %s, %s, %s, %s, %s "
        "FROM kntc.unit u WHERE u.id = %s RETURNING id",
        (case["id"], reported_on, actor.account_id, actor.unit_id, data["description"], data.get("field"),
         rule.code, due, case["handling_unit_id"]))
    row = await cur.fetchone()
    assert row is not None
    return {"id": str(row["id"]), "case": code, "reported_on": reported_on, "due_on": due, "rule_code": rule.code,
            "legal_basis": rule.legal_basis, "status": "open"}


async def correct(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, code: str,
                  discrepancy_id: str, data: dict[str, Any], today: date) -> dict[str, Any]:
    """Apply the correction (as PATCH does, with its reason) and close the discrepancy."""
    case = await cases.get_case(conn, code, details=False)
    cur = await conn.execute(
        "SELECT id, reported_on, due_on, status FROM kntc.discrepancy WHERE id = %s AND case_id = %s FOR UPDATE",
        (discrepancy_id, case["id"]))
    disc = await cur.fetchone()
    if disc is None:
        raise NotFound(discrepancy_id)
    if disc["status"] != "open":
        raise Invalid("discrepancy", "Sai lệch này đã được sửa.", "this discrepancy is already corrected")
    changes = {k: v for k, v in data.items() if k not in ("version",)}
    updated = await cases.update_case(conn, actor, code, data["version"], changes)
    late = today > disc["due_on"]
    days = book.calendar.working_days_between(disc["reported_on"], today)
    applied = {k: v for k, v in changes.items() if v is not None and k != "reason"}
    await conn.execute(
        "INSERT INTO kntc.correction (discrepancy_id, case_id, unit_id, unit_path, corrected_on, corrected_by, reason, "
        "changes, working_days, late) SELECT %s, %s, u.id, u.path, %s, %s, %s, %s, %s, %s FROM kntc.unit u "
        "WHERE u.id = %s",
        (disc["id"], case["id"], today, actor.account_id, data["reason"], Jsonb(applied), days, late,
         actor.unit_id))
    await conn.execute("UPDATE kntc.discrepancy SET status = 'corrected', corrected_on = %s WHERE id = %s",
                       (today, disc["id"]))
    return {"case": code, "version": updated["version"], "discrepancy": str(disc["id"]), "corrected_on": today,
            "due_on": disc["due_on"], "working_days": days, "late": late}


LATE = """
SELECT u.code AS unit, u.name AS unit_name, c.code AS case_code, d.id AS discrepancy_id, d.description,
       d.reported_on, d.due_on, k.corrected_on, k.working_days, k.reason,
       CASE WHEN k.id IS NULL THEN 'open_overdue' ELSE 'corrected_late' END AS state
  FROM kntc.discrepancy d
  JOIN kntc.case_file c ON c.id = d.case_id
  JOIN kntc.unit u ON u.id = d.unit_id
  LEFT JOIN kntc.correction k ON k.discrepancy_id = d.id
 WHERE ((k.id IS NOT NULL AND k.late) OR (d.status = 'open' AND d.due_on < %(today)s))
   AND (%(unit)s::text IS NULL OR d.unit_path <@ (SELECT path FROM kntc.unit WHERE code = %(unit)s))
 ORDER BY u.code, d.due_on
 LIMIT %(limit)s
"""


async def late(conn: AsyncConnection[Any], today: date, unit: str | None, limit: int) -> dict[str, Any]:
    """Corrections made after the limit, and discrepancies still open past it, per unit."""
    cur = await conn.execute(LATE, {"today": today, "unit": unit, "limit": limit})
    rows = await cur.fetchall()
    per_unit: dict[str, dict[str, Any]] = {}
    for r in rows:
        u = per_unit.setdefault(r["unit"], {"unit": r["unit"], "unit_name": r["unit_name"], "corrected_late": 0,
                                            "open_overdue": 0})
        u[r["state"]] += 1
    return {"data": rows, "per_unit": list(per_unit.values())}
