"""POST /api/v1/oauth/token: OAuth2 client credentials, the client authenticated by its certificate."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Request
from starlette.responses import Response

from core_app.exchange import certs, refusals, tokens
from core_app.exchange.problems import dumps

router = APIRouter(prefix="/api/v1/oauth", tags=["oauth"])

# RFC 6749 section 5.1: token answers are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type", "client_id"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string", "maxLength": 64},
                        "scope": {"type": "string", "description": "space-separated: read submit feed"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/token",
    openapi_extra=FORM,
    responses={
        200: {"description": "an access token bound to the presented certificate (`cnf.x5t#S256`)"},
        400: {"description": "RFC 6749 error"},
        401: {"description": "RFC 6749 invalid_client"},
    },
)
async def token(request: Request) -> Response:
    """A token for the client whose registered certificate was presented in the TLS handshake
    (RFC 8705 self_signed_tls_client_auth), good for 10 minutes, usable only with that certificate."""
    body = await request.body()
    cert = certs.presented(request)
    try:
        out = await tokens.issue(request.app.state.db, body, cert)
    except tokens.OAuthError as exc:
        _refused(request, body, exc, cert)
        headers = dict(NO_STORE)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="kntc-exchange"'
        return Response(
            dumps(tokens.error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers
        )
    return Response(out, status_code=200, media_type="application/json", headers=NO_STORE)


def _refused(request: Request, body: bytes, exc: tokens.OAuthError, cert: str | None) -> None:
    """Why, and for which client_id, for the record of refusals at the gate."""
    if exc.status == 401:
        reason = "unknown_client_or_certificate" if cert else "no_certificate"
    else:
        reason = f"token_{exc.error}"
    setattr(request.state, refusals.REASON, reason)
    with contextlib.suppress(tokens.OAuthError):
        setattr(request.state, refusals.ASKED, tokens.parse(body).get("client_id"))
