from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from core_app.api.deps import acting, require_role
from core_app.api.schemas import ReceptionIn

router = APIRouter(prefix="/api/receptions", tags=["receptions"])

INSERT = """
INSERT INTO kntc.reception (unit_id, unit_path, officer_id, visitor_name, visitor_id_number, visitor_address,
    people_count, content, documents_received, prior_handling_agency, action_taken, notes)
SELECT %(unit_id)s, u.path, %(account_id)s, %(visitor_name)s, %(visitor_id_number)s, %(visitor_address)s,
    %(people_count)s, %(content)s, %(documents_received)s, %(prior_handling_agency)s, %(action_taken)s, %(notes)s
  FROM kntc.unit u WHERE u.id = %(unit_id)s
RETURNING id, received_at
"""


@router.post("", status_code=201)
async def record_reception(body: ReceptionIn, request: Request) -> dict[str, Any]:
    """Record a citizen reception (form 03); link a petition to it with `reception_id`."""
    async with acting(request) as (conn, actor):
        require_role(actor, "reception", "head")
        cur = await conn.execute(INSERT, {**body.model_dump(), "unit_id": actor["unit_id"],
                                          "account_id": actor["account_id"]})
        row = await cur.fetchone()
        return {"id": str(row["id"]), "received_at": row["received_at"]} if row else {}


@router.get("")
async def list_receptions(request: Request, page: int = Query(1, ge=1), per_page: int = Query(50, ge=1, le=200)
                          ) -> dict[str, Any]:
    async with acting(request) as (conn, _):
        cur = await conn.execute(
            "SELECT r.id, r.received_at, r.visitor_name, r.people_count, r.content, r.action_taken, "
            "c.code AS case_code FROM kntc.reception r LEFT JOIN kntc.case_file c ON c.id = r.case_id "
            "ORDER BY r.received_at DESC LIMIT %s OFFSET %s", (per_page + 1, (page - 1) * per_page))
        rows = await cur.fetchall()
        return {"data": rows[:per_page], "page": page, "per_page": per_page, "has_more": len(rows) > per_page}
