from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from core_app.api.deps import database
from core_app.api.errors import ApiError

router = APIRouter(prefix="/api/units", tags=["units"])

COLUMNS = ("u.code, u.name, u.kind, u.level, p.code AS parent, u.admin_code, u.valid_from, u.valid_to, "
           "s.code AS successor")


@router.get("")
async def list_units(
    request: Request,
    parent: str | None = Query(None, description="code of the parent unit (VN for the nation)"),
    q: str | None = Query(None, min_length=2, max_length=100, description="part of the name"),
    include_legacy: bool = False,
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Units are public reference data (codes and names), not case data."""
    async with database(request).transaction() as conn:
        cur = await conn.execute(
            f"SELECT {COLUMNS} FROM kntc.unit u LEFT JOIN kntc.unit p ON p.id = u.parent_id "
            "LEFT JOIN kntc.unit s ON s.id = u.successor_id "
            "WHERE (%(parent)s::text IS NULL OR p.code = %(parent)s) "
            "AND (%(q)s::text IS NULL OR u.name ILIKE '%%' || %(q)s || '%%') "
            "AND (%(legacy)s OR u.valid_to IS NULL) ORDER BY u.code LIMIT %(limit)s",
            {"parent": parent, "q": q, "legacy": include_legacy, "limit": limit})
        return await cur.fetchall()


@router.get("/{code}")
async def get_unit(code: str, request: Request) -> dict[str, Any]:
    async with database(request).transaction() as conn:
        cur = await conn.execute(
            f"SELECT {COLUMNS} FROM kntc.unit u LEFT JOIN kntc.unit p ON p.id = u.parent_id "
            "LEFT JOIN kntc.unit s ON s.id = u.successor_id WHERE u.code = %s", (code,))
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "unit_not_found", "Không có đơn vị với mã này.", f"no unit with code {code!r}")
        return row
