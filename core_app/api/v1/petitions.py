"""Submissions: one petition or case (`/api/v1/petitions`), or up to 100 (`/api/v1/batches`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from psycopg import AsyncConnection
from starlette.responses import Response

from core_app.api.v1.common import ERRORS, IDEMPOTENCY, write
from core_app.exchange import submit
from core_app.exchange.gate import Client
from core_app.gate import Actor

router = APIRouter(prefix="/api/v1", tags=["submit"])


def _body(schema: str) -> dict[str, Any]:
    return {
        "parameters": [IDEMPOTENCY],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
    }


@router.post(
    "/petitions",
    openapi_extra=_body("Submission"),
    responses={
        201: {"description": "a new case file"},
        200: {"description": "the case's results updated, or unchanged"},
        **ERRORS,
    },
)
async def submit_one(request: Request) -> Response:
    """A petition or case the body received, under its `external_id`, with its handling and resolution
    results. The first submission is checked against the national data for duplicates."""
    app = request.app

    async def work(conn: AsyncConnection[Any], client: Client, actor: Actor, body: Any) -> tuple[int, Any]:
        book = await app.state.rulebooks.current(conn)
        return await submit.single(conn, client, actor, book, body, app.state.clock())

    return await write(request, work)


@router.post(
    "/batches",
    openapi_extra=_body("Batch"),
    responses={
        200: {
            "description": "a result per item (`results[i]` answers `items[i]`): stored ones with their case "
            "code, refused ones with an RFC 9457 problem and JSON pointers to the fields"
        },
        **ERRORS,
    },
)
async def submit_batch(request: Request) -> Response:
    """Up to 100 submissions; a refused item stores nothing, its good neighbours are stored."""
    app = request.app

    async def work(conn: AsyncConnection[Any], client: Client, actor: Actor, body: Any) -> tuple[int, Any]:
        book = await app.state.rulebooks.current(conn)
        return await submit.batch(conn, client, actor, book, body, app.state.clock())

    return await write(request, work)
