"""The duplicate step of the intake screens: the check on what the officer typed, and each decision.

The same functions as the API's (core_app.dedup.intake, core_app.repo.cases): the database refuses a
petition recorded without its check and decision whichever screen or client records it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection

from core_app.dedup import intake
from core_app.domain import workflow
from core_app.repo import cases


def query_of(payload: dict[str, Any]) -> dict[str, Any]:
    """What the check looks for: each party's name, ID number and address unit, the subject, the respondent."""
    parties = [{k: p.get(k) for k in ("full_name", "id_number", "address_unit") if p.get(k)}
               for p in payload.get("parties") or []]
    return {"parties": parties or [{}], "subject": payload.get("subject"), "respondent": payload.get("respondent"),
            "limit": 10}


async def run_check(conn: AsyncConnection[Any], actor: workflow.Actor, payload: dict[str, Any]) -> dict[str, Any]:
    return await intake.check(conn, actor, query_of(payload))


async def link(conn: AsyncConnection[Any], actor: workflow.Actor, check_id: str, code: str,
               payload: dict[str, Any], today: date) -> None:
    """The petition joins an existing case file (a resent or copied petition on the same matter)."""
    petition = {k: payload.get(k) for k in ("channel", "content", "received_on", "people_count", "reception_id")}
    await cases.add_petition(conn, actor, code, petition, today, check_id=check_id,
                             note="linked at intake (web)")


async def elsewhere(conn: AsyncConnection[Any], actor: workflow.Actor, check_id: str, handle: str | None,
                    reason: str | None) -> None:
    """The matter is held by a unit the officer may not read: decide so, and ask that unit's head."""
    if not handle:
        raise cases.Invalid("_form", "Không có hồ sơ nào được giữ ở đơn vị khác trong lần kiểm tra này.",
                            "this check found no case held elsewhere")
    if not reason or len(reason) < 10:
        raise cases.Invalid("inquiry_reason", "Hãy nêu lý do hỏi đơn vị đang giữ hồ sơ (ít nhất 10 ký tự).",
                            "say why you ask the unit holding the case (10 characters at least)")
    await intake.inquire(conn, handle, reason, None)
    await intake.decide(conn, actor, {"check_id": check_id, "decision": "elsewhere", "inquiry_handle": handle,
                                      "note": reason}, date.today())


def said(exc: Exception) -> tuple[str, str]:
    vi, en = getattr(exc, "vi", None), getattr(exc, "en", None)
    if vi and en:
        return vi, en
    return ("Không tìm thấy hồ sơ, hoặc hồ sơ nằm ngoài phạm vi tài khoản được xem.",
            "Not found, or outside what your account may see.")
