"""Reads: search and fetch within the client's entitlement, each with a stated purpose."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from psycopg import AsyncConnection
from starlette.responses import Response

from core_app.api.v1.common import ERRORS, PURPOSE, read
from core_app.exchange import read as reader
from core_app.exchange.gate import Client
from core_app.exchange.submit import problem_of
from core_app.gate import Actor
from core_app.repo.cases import Invalid, NotFound

router = APIRouter(prefix="/api/v1/cases", tags=["read"])
HEADERS = {"parameters": [PURPOSE]}


@router.get("", openapi_extra=HEADERS, responses={200: {"description": "one page, newest first"}, **ERRORS})
async def search(
    request: Request,
    q: str | None = Query(None, max_length=200, description="words of the subject, with or without diacritics"),
    code: str | None = Query(None, max_length=80, description="case code or its beginning"),
    respondent: str | None = Query(None, max_length=200),
    kind: Literal["complaint", "denunciation", "recommendation", "multi"] | None = None,
    status: Literal[
        "received", "in_handling", "accepted", "verifying", "resolved", "closed", "guided", "filed", "returned"
    ]
    | None = None,
    received_from: date | None = None,
    received_to: date | None = None,
    after: str | None = Query(None, max_length=200, description="the `next` cursor of the previous page"),
    per_page: int = Query(20, ge=1, le=100),
) -> Response:
    """Cases this client may read (its unit's area, up to its clearance)."""
    purpose = reader.purpose_of(request.headers)
    filters = {
        "q": q,
        "code": code,
        "person": None,
        "id_number": None,
        "respondent": respondent,
        "unit": None,
        "kind": kind,
        "status": status,
        "received_from": received_from,
        "received_to": received_to,
    }

    async def work(conn: AsyncConnection[Any], client: Client, actor: Actor) -> tuple[int, Any]:
        try:
            return 200, await reader.search(conn, filters, after, per_page, purpose)
        except (Invalid, NotFound) as exc:
            raise problem_of(exc) from None

    return await read(request, "read", work)


@router.get("/{code}", openapi_extra=HEADERS, responses={200: {"description": "the case file"}, **ERRORS})
async def fetch(code: str, request: Request) -> Response:
    """One case file; a protected denouncer is never shown (`protected_parties` says one exists)."""
    purpose = reader.purpose_of(request.headers)
    if len(code) > 80:
        return await read(request, "read", _not_found)

    async def work(conn: AsyncConnection[Any], client: Client, actor: Actor) -> tuple[int, Any]:
        try:
            return 200, await reader.fetch(conn, code, purpose)
        except NotFound as exc:
            raise problem_of(exc) from None

    return await read(request, "read", work)


async def _not_found(conn: AsyncConnection[Any], client: Client, actor: Actor) -> tuple[int, Any]:
    raise problem_of(NotFound(""))
