from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from core_app.api.deps import acting, database, today
from core_app.repo import cases

router = APIRouter(prefix="/api/deadlines", tags=["deadlines"])


@router.get("/rules")
async def rules(request: Request) -> list[dict[str, Any]]:
    """The statutory limits, as data: each with its unit, start event and legal basis."""
    async with database(request).transaction() as conn:
        cur = await conn.execute("SELECT * FROM kntc.deadline_rule ORDER BY case_kind, step, complaint_round")
        return await cur.fetchall()


@router.get("/overdue")
async def overdue(request: Request, unit: str | None = Query(None, description="a unit code; its subtree"),
                  limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    """Overdue steps of the cases you may see, oldest first, with the number of days late."""
    async with acting(request) as (conn, _):
        rows = await cases.overdue(conn, today(request), unit, limit)
        per_unit: dict[str, int] = {}
        for r in rows:
            per_unit[r["handling_unit"]] = per_unit.get(r["handling_unit"], 0) + 1
        return {"data": rows, "per_unit": per_unit}
