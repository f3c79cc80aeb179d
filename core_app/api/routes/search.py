from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from core_app.api.deps import acting
from core_app.dedup import search as finder

router = APIRouter(prefix="/api/search", tags=["search"])


@router.get("")
async def search(
    request: Request,
    q: str | None = Query(None, max_length=200,
                          description="words of the subject, with or without diacritics"),
    code: str | None = Query(None, max_length=80, description="case code or its beginning"),
    person: str | None = Query(None, max_length=200, description="name of a party, from its beginning (surname first)"),
    id_number: str | None = Query(None, pattern=r"^[0-9]{12}$"),
    respondent: str | None = Query(None, max_length=200),
    unit: str | None = Query(None, max_length=40, description="unit code: cases held or received in its subtree"),
    kind: Literal["complaint", "denunciation", "recommendation", "multi"] | None = None,
    status: Literal["received", "in_handling", "accepted", "verifying", "resolved", "closed", "guided", "filed",
                    "returned"] | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    after: str | None = Query(None, max_length=200, description="the `next` cursor of the previous page"),
    per_page: int = Query(20, ge=1, le=100),
) -> dict[str, Any]:
    """Cases you may see, newest first; every filter is optional and they combine."""
    filters = {"q": q, "code": code, "person": person, "id_number": id_number, "respondent": respondent,
               "unit": unit, "kind": kind, "status": status, "received_from": received_from,
               "received_to": received_to}
    async with acting(request) as (conn, _):
        return await finder.search(conn, filters, after, per_page)
