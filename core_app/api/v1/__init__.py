"""The exchange API, version 1: `/api/v1/...`, its own OpenAPI document and RFC 9457 errors.

Kept out of the officers' `/openapi.json`: another body's engineers build against
`/api/v1/openapi.json` alone, and a new version would sit beside this one as `/api/v2`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import ORJSONResponse
from pydantic.json_schema import models_json_schema
from starlette.responses import Response

from core_app import __version__
from core_app.api.v1 import cases, feed, oauth, petitions
from core_app.exchange import problems, refusals
from core_app.exchange.schemas import Batch, Submission

PREFIX = "/api/v1/"
MODULES = (oauth, petitions, cases, feed)


def is_v1(path: str) -> bool:
    return path.startswith(PREFIX)


def document(app: FastAPI) -> dict[str, Any]:
    routes = [r for m in MODULES for r in m.router.routes]
    doc = get_openapi(
        title="KNTC exchange API / API kết nối",
        version=f"1 ({__version__})",
        routes=routes,
        description=(
            "For the case systems of the Party, the National Assembly and People's Councils, the "
            "courts, the procuracies and the Fatherland Front. Mutual TLS with the client's "
            "registered certificate on every call; an OAuth2 client-credentials token bound to it "
            "(RFC 8705); `Idempotency-Key` on every write; `Purpose` on every read; errors as RFC "
            "9457 problem details. Guide: runbooks/connect-a-body.md."
        ),
    )
    _, defs = models_json_schema(
        [(Submission, "validation"), (Batch, "validation")], ref_template="#/components/schemas/{model}"
    )
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(defs.get("$defs", {}))
    components["securitySchemes"] = {
        "clientCertificate": {"type": "mutualTLS", "description": "the client's registered certificate"},
        "accessToken": {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/api/v1/oauth/token",
                    "scopes": {
                        "read": "search and fetch cases",
                        "submit": "submit petitions and results",
                        "feed": "follow the change feed",
                    },
                }
            },
        },
    }
    doc["openapi"] = "3.1.0"
    return doc


def install(app: FastAPI) -> None:
    for module in MODULES:
        app.include_router(module.router, include_in_schema=False)
    # Refusals before the client is known are counted and logged (bounded): probing shows.
    app.add_middleware(refusals.Watch)

    @app.exception_handler(problems.Problem)
    async def problem(_: Request, exc: problems.Problem) -> Response:
        return problems.response(exc)

    cache: dict[str, Any] = {}

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    async def openapi() -> ORJSONResponse:
        if "doc" not in cache:
            cache["doc"] = document(app)
        return ORJSONResponse(cache["doc"])
