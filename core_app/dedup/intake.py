"""Duplicate check at intake and the officer's decision, inside the officer's transaction.

The match runs nationwide in kntc.dedup_candidates (SECURITY DEFINER), which also records the
check and counts it against the officer's budget. A case the officer may read comes back with
its code, subject, score and reasons. Every other match, however many, is one line saying that a
possible existing case is held elsewhere, with a handle to ask about it (`inquire`): no unit,
code, subject, score, reason or which field matched, and always last, so neither the ranking nor
the count tells anything. A protected denouncer is matched only for those handling that case.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core_app import throttle
from core_app.dedup import decisions, units
from core_app.domain import workflow
from core_app.repo import cases
from core_app.repo.cases import Invalid, NotFound

REASONS = {
    "id_number": ("cùng số định danh cá nhân", "same personal ID number"),
    "name_address": ("cùng họ tên và địa chỉ (sau chuẩn hóa)", "same name and address (normalised)"),
    "similar_name_address": ("họ tên gần giống, cùng địa chỉ", "similar name, same address"),
    "similar_subject": ("nội dung đơn tương tự", "similar subject"),
    "similar_respondent": ("cùng đối tượng bị khiếu nại/tố cáo", "similar respondent"),
    "same_name_other_id": ("trùng họ tên nhưng khác số định danh (nhiều khả năng là người khác)",
                           "same name, different ID number (most likely another person)"),
}

CANDIDATES = """
SELECT check_id, readable, case_code, subject, kind, status, received_on, unit_code, unit_name, reasons, score, handle
  FROM kntc.dedup_candidates(%(query)s, %(ids)s, %(names)s, %(units)s, %(subject)s, %(respondent)s, %(limit)s,
                             %(name_ids)s)
"""

HELD_ELSEWHERE = ("Có thể đã có hồ sơ về việc này tại một đơn vị khác. Nếu cần, hãy gửi yêu cầu (nêu lý do) "
                  "để thủ trưởng đơn vị đó liên hệ với đơn vị mình.",
                  "A possible existing case is held elsewhere. If you need to, send an inquiry with a reason: "
                  "the head of the unit holding it will be told and may contact your unit.")

THROTTLED = "KT429"  # SQLSTATE of kntc.dedup_candidates past the officer's budget


def _explain(row: dict[str, Any]) -> dict[str, Any]:
    if not row["readable"]:
        return {"in_scope": False, "held_elsewhere": True, "inquiry_handle": str(row["handle"]),
                "message": HELD_ELSEWHERE[0], "message_en": HELD_ELSEWHERE[1]}
    reasons = [{"code": r, "label": REASONS[r][0], "label_en": REASONS[r][1]} for r in row["reasons"] if r in REASONS]
    return {"in_scope": True, "case_code": row["case_code"], "subject": row["subject"], "kind": row["kind"],
            "status": row["status"], "received_on": row["received_on"], "unit_code": row["unit_code"],
            "unit_name": row["unit_name"], "score": row["score"], "reasons": reasons}


async def check(conn: AsyncConnection[Any], actor: workflow.Actor, query: dict[str, Any]) -> dict[str, Any]:
    """Ranked candidates for a petition about to be recorded; the database keeps the check for the decision."""
    parties = query["parties"]
    written = [p["address_unit"] for p in parties if p.get("address_unit")]
    resolved = await units.resolve_written(conn, written)
    unknown = [c for c, uid in resolved.items() if uid is None]
    if unknown:
        raise Invalid("parties.address_unit", f"Không tìm thấy đơn vị hành chính: {', '.join(unknown)}.",
                      f"unknown unit code(s): {', '.join(unknown)}")
    # A name is looked for at its current unit and, for a pre-2025 address, at the legacy unit as
    # written too: "match on both". Its ID number, when given, tells another person of the same name.
    names: list[str] = []
    unit_ids: list[int] = []
    name_ids: list[str | None] = []
    for p in parties:
        if not (p.get("full_name") and p.get("address_unit")):
            continue
        for uid in (u for u in resolved[p["address_unit"]] or () if u is not None):
            names.append(p["full_name"])
            unit_ids.append(uid)
            name_ids.append(p.get("id_number"))
    params = {
        "query": Jsonb(query, dumps=_dumps),
        "ids": [p["id_number"] for p in parties if p.get("id_number")],
        "names": names, "units": unit_ids, "name_ids": name_ids,
        "subject": query.get("subject"), "respondent": query.get("respondent"), "limit": query["limit"],
    }
    # The check is a record of what was shown, kept for the decision that follows; a crash may
    # lose the last few milliseconds of such records, so the check does not wait for the WAL
    # flush (the decision itself commits synchronously).
    await conn.execute("SET LOCAL synchronous_commit = off")
    try:
        cur = await conn.execute(CANDIDATES, params)
        rows = await cur.fetchall()
    except psycopg.Error as exc:
        if exc.sqlstate == THROTTLED:
            raise throttle.Throttled(int(exc.diag.message_detail or 60),
                                     "Kiểm tra trùng quá nhiều lần trong thời gian ngắn; hãy thử lại sau ít phút.",
                                     "too many duplicate checks in a short time: try again in a few minutes",
                                     "dedup_throttled") from None
        raise
    found = [_explain(r) for r in rows if r["readable"] is not None]
    return {"check_id": str(rows[0]["check_id"]), "candidates": found,
            "held_elsewhere": any(not c["in_scope"] for c in found)}


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str, ensure_ascii=False)


async def inquire(conn: AsyncConnection[Any], handle: str, reason: str, petition_ref: str | None) -> None:
    """Ask the unit(s) holding a hidden match; their heads see it in `inquiries`."""
    cur = await conn.execute("SELECT kntc.dedup_inquire(%s, %s, %s) AS sent", (handle, reason, petition_ref))
    row = await cur.fetchone()
    if not row or not row["sent"]:
        raise NotFound(handle)


async def inquiries(conn: AsyncConnection[Any], limit: int) -> list[dict[str, Any]]:
    """The inquiries other units sent to the acting head's unit, newest first."""
    cur = await conn.execute("SELECT * FROM kntc.dedup_inquiries(%s)", (limit,))
    return await cur.fetchall()


async def decide(conn: AsyncConnection[Any], actor: workflow.Actor, data: dict[str, Any],
                 today: date) -> dict[str, Any]:
    """Record what the officer decided about a check: linked (the petition joins the case) or elsewhere.

    A new matter is decided by recording it: POST /api/cases with the check's id."""
    cur = await conn.execute("SELECT id, account_id FROM kntc.dedup_check WHERE id = %s", (data["check_id"],))
    chk = await cur.fetchone()
    if chk is None or chk["account_id"] != actor.account_id:
        raise NotFound(data["check_id"])
    decision = data["decision"]
    result: dict[str, Any] = {"decision": decision}
    if decision == "new":
        raise workflow.TransitionRefused(
            "record_with_check", "Đơn mới được ghi nhận cùng quyết định: gửi POST /api/cases kèm dedup_check_id.",
            "a new matter is decided by recording it: POST /api/cases with this dedup_check_id")
    if decision == "linked":
        if not data.get("case_code"):
            raise Invalid("case_code", "Cần mã hồ sơ.", "case_code is required for this decision")
        if not data.get("petition"):
            raise Invalid("petition", "Cần thông tin đơn để gộp vào hồ sơ.",
                          "petition is required to link it to the case")
        added = await cases.add_petition(conn, actor, data["case_code"], data["petition"], today,
                                         check_id=data["check_id"], note=data.get("note"))
        result.update({"case_code": data["case_code"], "petition_id": added["id"]})
        cur = await conn.execute("SELECT id, decided_at FROM kntc.dedup_decision WHERE check_id = %s",
                                 (data["check_id"],))
        row = await cur.fetchone()
        assert row is not None
        return {"id": str(row["id"]), "decided_at": row["decided_at"], **result}
    await decisions.claim(conn, actor, data["check_id"])
    other_unit_id = lead_handle = None
    if data.get("inquiry_handle") and not data.get("unit"):
        # Held elsewhere, unit unknown to the officer: the handle stands for it.
        lead_handle = str(data["inquiry_handle"])
    else:
        if not data.get("unit"):
            raise Invalid("unit", "Cần mã đơn vị đang giữ hồ sơ, hoặc mã yêu cầu (inquiry_handle) của lần kiểm tra.",
                          "unit is required (the unit that holds the case), or the check's inquiry_handle")
        other_unit_id = (await units.resolve(conn, [data["unit"]]))[data["unit"]]
        if other_unit_id is None:
            raise Invalid("unit", "Không tìm thấy đơn vị.", f"unknown unit {data['unit']!r}")
        result["unit"] = data["unit"]
    row = await decisions.record(conn, actor, data["check_id"], "elsewhere", other_unit_id=other_unit_id,
                                 lead_handle=lead_handle, note=data.get("note"))
    return {"id": str(row["id"]), "decided_at": row["decided_at"], **result}
