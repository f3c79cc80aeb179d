"""What every exchange route does: authenticate the client, run the work in a savepoint, log the
request and its answer in the client's chain, answer with JSON or a problem."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from psycopg import AsyncConnection
from starlette.responses import Response

from core_app.exchange import gate, idempotency, log
from core_app.exchange.gate import Client
from core_app.exchange.problems import MEDIA_TYPE, Problem, dumps
from core_app.gate import Actor

Work = Callable[[AsyncConnection[Any], Client, Actor], Awaitable[tuple[int, Any]]]

# Headers another body sends and reads (documented in the OpenAPI document).
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 255},
    "description": "unique per operation (a UUID): a retry with the same key and body gets the first answer",
}
PURPOSE = {
    "name": "Purpose",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "minLength": 3, "maxLength": 500},
    "description": "why this read is made (recorded with the client in the access log)",
}
PROBLEM = {"description": "RFC 9457 problem details", "content": {MEDIA_TYPE: {"schema": {"type": "object"}}}}
ERRORS: dict[int | str, dict[str, Any]] = {s: PROBLEM for s in (400, 401, 403, 404, 409, 422, 429)}


def route_of(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def message_in(request: Request, body: bytes) -> bytes:
    """What the client sent, as the log keeps it: request line, the headers that change its meaning, body."""
    line = f"{request.method} {request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    extra = [f"{h}: {request.headers[h]}" for h in ("idempotency-key", "purpose") if h in request.headers]
    return "\n".join([line, *extra, ""]).encode() + body


async def _attempt(conn: AsyncConnection[Any], client: Client, actor: Actor, work: Work) -> tuple[int, bytes]:
    try:
        async with conn.transaction():  # a refusal undoes this request's work, not its log entry
            status, payload = await work(conn, client, actor)
        return status, dumps(payload)
    except Problem as p:
        return p.status, dumps(p.body())


def _answer(status: int, out: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(
        out, status_code=status, media_type=MEDIA_TYPE if status >= 400 else "application/json", headers=headers
    )


async def read(request: Request, scope: str, work: Work) -> Response:
    async with gate.acting(request, scope) as (conn, client, actor):
        status, out = await _attempt(conn, client, actor, work)
        await log.record(conn, client.id, route_of(request), message_in(request, b""), status, out)
    return _answer(status, out)


async def write(
    request: Request, work: Callable[[AsyncConnection[Any], Client, Actor, Any], Awaitable[tuple[int, Any]]]
) -> Response:
    body = await request.body()
    async with gate.acting(request, "submit") as (conn, client, actor):
        route = route_of(request)
        headers: dict[str, str] = {}
        try:
            key = idempotency.key_of(request.headers)
            parsed = _json(request, body)

            async def run() -> tuple[int, bytes]:
                return await _attempt(conn, client, actor, lambda c, cl, a: work(c, cl, a, parsed))

            status, out, replayed = await idempotency.once(conn, client.id, key, route, body, run)
            if replayed:
                headers["Idempotent-Replayed"] = "true"
        except Problem as p:
            status, out = p.status, dumps(p.body())
        await log.record(conn, client.id, route, message_in(request, body), status, out)
    return _answer(status, out, headers)


def _json(request: Request, body: bytes) -> Any:
    import orjson

    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Problem(400, "invalid_json", "the body is not valid JSON") from None
