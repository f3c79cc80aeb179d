from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from core_app.api.deps import acting
from core_app.api.schemas import ReceptionIn
from core_app.repo import receptions

router = APIRouter(prefix="/api/receptions", tags=["receptions"])


@router.post("", status_code=201)
async def record_reception(body: ReceptionIn, request: Request) -> dict[str, Any]:
    """Record a citizen reception (form 03); link a petition to it with `reception_id`."""
    async with acting(request, *receptions.ROLES) as (conn, actor):
        row = await receptions.record(conn, actor, body.model_dump())
        return {"id": str(row["id"]), "received_at": row["received_at"]}


@router.get("")
async def list_receptions(request: Request, per_page: int = Query(50, ge=1, le=200),
                          after: str | None = Query(None, max_length=200,
                                                    description="the `next` cursor of the previous page")
                          ) -> dict[str, Any]:
    """Receptions of your area, newest first; a protected denouncer's identity is left out."""
    async with acting(request, *receptions.ROLES) as (conn, _):
        return await receptions.list_receptions(conn, per_page, after)
