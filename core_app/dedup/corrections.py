"""The duty to correct wrong data: a discrepancy is reported, the unit holding the case corrects
it with a reason, and a correction later than the DATA-CORRECT limit (5 working days from the
report, kntc.deadline_rule) is flagged late and listed per unit.

Any recorded field may be corrected: of the case, of a party, of a petition (FIELDS). A correction
without an earlier report is reported and corrected at once (it is on time). Only the unit holding
the case corrects it, always with a reason; the database holds the same rules (the party and
petition update policies, kntc.correction_reason_required) and the audit chain keeps the before and
after. A protected denouncer's old and new values stay out of the correction record and the
timeline, which every reader of the case sees: they are in the audit chain only.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import EmailStr, StringConstraints, TypeAdapter, ValidationError

from core_app.api.schemas import Channel, IdNumber, Kind, Short, Text, UnitCode
from core_app.dedup import units
from core_app.domain import workflow
from core_app.domain.deadlines import Rule, due_for
from core_app.repo import cases
from core_app.repo.cases import Invalid, NotFound, RuleBook

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 .-]{6,20}$")]

# What may be corrected, where, as what type (None: the field may be emptied), with its label.
FIELDS: dict[str, dict[str, tuple[Any, str, str]]] = {
    "case": {
        "subject": (Subject, "Trích yếu", "Subject"),
        "content": (Text, "Nội dung đơn", "Content"),
        "respondent": (Short | None, "Người/cơ quan bị khiếu nại, tố cáo", "Respondent"),
        "kind": (Kind, "Phân loại", "Kind"),
        "channel": (Channel, "Nguồn đơn", "Channel"),
        "received_on": (date, "Ngày nhận đơn", "Date received"),
        "decision_known_on": (date | None, "Ngày biết quyết định bị khiếu nại", "Day the decision became known"),
        "is_complex": (bool, "Vụ việc phức tạp", "Complex case"),
        "is_remote_area": (bool, "Vùng sâu, vùng xa", "Remote area"),
        "classification": (Literal[0, 1, 2], "Độ mật", "Secrecy level"),
    },
    "party": {
        "role": (Literal["complainant", "denouncer", "petitioner", "representative"], "Tư cách", "Capacity"),
        "party_kind": (Literal["person", "organisation"], "Cá nhân/tổ chức", "Person or organisation"),
        "full_name": (Name, "Họ và tên", "Full name"),
        "id_number": (IdNumber | None, "Số định danh cá nhân", "Personal ID number"),
        "address": (Short | None, "Địa chỉ", "Address"),
        "address_unit": (UnitCode | None, "Đơn vị hành chính của địa chỉ", "Unit of the address"),
        "phone": (Phone | None, "Điện thoại", "Phone"),
        "email": (EmailStr | None, "Thư điện tử", "E-mail"),
    },
    "petition": {
        "received_on": (date, "Ngày nhận đơn", "Date received"),
        "channel": (Channel, "Nguồn đơn", "Channel"),
        "content": (Text, "Nội dung đơn", "Content"),
        "people_count": (Annotated[int, "people"], "Số người đứng đơn", "Number of signatories"),
    },
}
PROTECTED = "(được bảo vệ / protected)"


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
    updated = await cases.update_case(conn, actor, code, data["version"], changes, book=book, today=today)
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


def _value(target: str, field: str, raw: Any) -> Any:
    spec = FIELDS.get(target, {}).get(field)
    if spec is None:
        raise Invalid("field", f"Không sửa được trường '{field}' của {target}.",
                      f"{target} field {field!r} cannot be corrected; one of: {', '.join(FIELDS.get(target, {}))}")
    if raw == "" or raw is None:
        raw = None
    elif field == "classification" and isinstance(raw, str) and raw.isdigit():
        raw = int(raw)  # a form sends text
    try:
        value = TypeAdapter(spec[0]).validate_python(raw)
    except ValidationError:
        raise Invalid("value", f"Giá trị mới của '{spec[1]}' không hợp lệ.",
                      f"the new value of {field!r} is not valid") from None
    if field == "received_on" and value and value > date.today():
        raise Invalid("value", "Ngày nhận không thể ở tương lai.", "the date received cannot be in the future")
    if field == "people_count" and not 1 <= value <= 10_000:
        raise Invalid("value", "Số người đứng đơn từ 1 đến 10.000.", "signatories: 1 to 10,000")
    return value


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date) else v


async def correct_field(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, code: str,
                        data: dict[str, Any], today: date) -> dict[str, Any]:
    """Correct one recorded field, with its reason, closing the report it answers (or a new one)."""
    target, field = data["target"], data["field"]
    value = _value(target, field, data.get("value"))
    reason = (data.get("reason") or "").strip()
    if len(reason) < 3:
        raise Invalid("reason", "Cần nêu lý do sửa dữ liệu.", "a correction needs a reason")
    case = await cases.get_case(conn, code, details=False)
    if case["handling_unit_id"] != actor.unit_id or "external_reader" in actor.roles:
        raise workflow.TransitionRefused("wrong_unit", "Chỉ đơn vị đang giải quyết hồ sơ mới được sửa dữ liệu.",
                                         "only officers of the unit that holds the case may correct its data")
    if data.get("discrepancy_id"):
        disc_id = str(data["discrepancy_id"])
    else:
        label = FIELDS[target][field]
        made = await report(conn, actor, book, code, {"description": f"{label[0]} / {label[2]}: {reason}",
                                                      "field": f"{target}.{field}"}, today)
        disc_id = made["id"]
    await conn.execute("SELECT set_config('kntc.change_reason', %s, true)", (reason,))
    if target == "case":
        updated = await cases.update_case(conn, actor, code, data["version"], {field: value, "reason": reason},
                                          book=book, today=today, allow_null=True)
        version = updated["version"]
        changes = {"target": "case", "field": field, "before": _plain(case.get(field)), "after": _plain(value)}
    else:
        version, changes = await _correct_row(conn, actor, code, data, target, field, value, reason, case)
    result = await _close(conn, actor, book, case, code, disc_id, reason, changes, today)
    return {**result, "version": version, "field": f"{target}.{field}"}


ROWS = {"party": "SELECT p.*, u.code AS address_unit FROM kntc.party p "
                 "LEFT JOIN kntc.unit u ON u.id = p.address_unit_id WHERE p.id = %s AND p.case_id = %s",
        "petition": "SELECT * FROM kntc.petition WHERE id = %s AND case_id = %s"}


async def _correct_row(conn: AsyncConnection[Any], actor: workflow.Actor, code: str, data: dict[str, Any],
                       target: str, field: str, value: Any, reason: str,
                       case: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    row_id = str(data.get("target_id") or "")
    try:
        uuid.UUID(row_id)
    except ValueError:
        raise Invalid("target_id", "Cần mã của người/đơn cần sửa.", f"target_id of the {target} is required") from None
    locked = await cases._locked(conn, code, data["version"])
    cur = await conn.execute(ROWS[target], (row_id, case["id"]))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(row_id)
    sets: dict[str, Any] = {field: value}
    if field == "address_unit":
        resolved = (await units.resolve_written(conn, [value]))[value] if value else (None, None)
        if resolved is None:
            raise Invalid("value", f"Không có đơn vị hành chính mã {value}.", f"no unit with code {value!r}")
        sets = {"address_unit_id": resolved[0], "address_unit_written_id": resolved[1]}
    table = "kntc.party" if target == "party" else "kntc.petition"
    cur = await conn.execute(
        f"UPDATE {table} SET {', '.join(f'{k} = %({k})s' for k in sets)} WHERE id = %(id)s RETURNING id",
        {**sets, "id": row_id})
    if await cur.fetchone() is None:
        raise workflow.TransitionRefused("wrong_unit", "Không được sửa dữ liệu này.", "you may not correct this row")
    await conn.execute("UPDATE kntc.case_file SET version = version + 1, updated_at = now() WHERE id = %s",
                       (case["id"],))
    protected = target == "party" and row.get("identity_protected")
    changes = {"target": target, "target_id": row_id, "field": field,
               "before": PROTECTED if protected else _plain(row.get(field)),
               "after": PROTECTED if protected else _plain(value)}
    await cases._event(conn, case["id"], actor, "correct", locked["status"], locked["status"], reason, changes)
    return locked["version"] + 1, changes


async def _close(conn: AsyncConnection[Any], actor: workflow.Actor, book: RuleBook, case: dict[str, Any], code: str,
                 disc_id: str, reason: str, changes: dict[str, Any], today: date) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT id, reported_on, due_on, status FROM kntc.discrepancy WHERE id = %s AND case_id = %s FOR UPDATE",
        (disc_id, case["id"]))
    disc = await cur.fetchone()
    if disc is None:
        raise NotFound(disc_id)
    if disc["status"] != "open":
        raise Invalid("discrepancy", "Sai lệch này đã được sửa.", "this discrepancy is already corrected")
    late = today > disc["due_on"]
    days = book.calendar.working_days_between(disc["reported_on"], today)
    cur = await conn.execute(
        "INSERT INTO kntc.correction (discrepancy_id, case_id, unit_id, unit_path, corrected_on, corrected_by, reason, "
        "changes, working_days, late) SELECT %s, %s, u.id, u.path, %s, %s, %s, %s, %s, %s FROM kntc.unit u "
        "WHERE u.id = %s RETURNING id",
        (disc["id"], case["id"], today, actor.account_id, reason, Jsonb(changes), days, late, actor.unit_id))
    row = await cur.fetchone()
    await conn.execute("UPDATE kntc.discrepancy SET status = 'corrected', corrected_on = %s WHERE id = %s",
                       (today, disc["id"]))
    return {"case": code, "discrepancy": str(disc["id"]), "correction": str(row["id"]) if row else None,
            "corrected_on": today, "due_on": disc["due_on"], "working_days": days, "late": late}
