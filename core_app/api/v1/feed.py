"""GET /api/v1/feed: what changed in the cases this client is involved in, from its cursor."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from psycopg import AsyncConnection
from starlette.responses import Response

from core_app.api.v1.common import ERRORS, PURPOSE, read
from core_app.exchange import feed as changes
from core_app.exchange import read as reader
from core_app.exchange.gate import Client
from core_app.gate import Actor

router = APIRouter(prefix="/api/v1", tags=["feed"])


@router.get(
    "/feed",
    openapi_extra={"parameters": [PURPOSE]},
    responses={200: {"description": "events in order; save the `cursor` of the last one you processed"}, **ERRORS},
)
async def feed(
    request: Request,
    cursor: str | None = Query(None, max_length=200, description="where to resume (a saved cursor)"),
    limit: int = Query(100, ge=1, le=500),
) -> Response:
    """Events of the cases held or received by the client's unit or submitted by it: at least once,
    in one order; resuming from an item's cursor continues right after that item."""
    purpose = reader.purpose_of(request.headers)
    changes.decode(cursor)  # a bad cursor is refused before anything runs

    async def work(conn: AsyncConnection[Any], client: Client, actor: Actor) -> tuple[int, Any]:
        return 200, await changes.page(conn, client, cursor, limit, purpose)

    return await read(request, "feed", work)
