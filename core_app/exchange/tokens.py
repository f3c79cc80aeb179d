"""OAuth2 client credentials (RFC 6749 section 4.4) with the client authenticated by its certificate
(RFC 8705 `self_signed_tls_client_auth`) and the token bound to it (`cnf.x5t#S256`).

Issued by the login role (kntc_auth), as officers' sessions are; the token is 256 random bits,
stored only as its SHA-256, good for 10 minutes.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

from core_app.exchange import certs, log
from core_app.exchange.problems import dumps
from core_app.exchange.schemas import SCOPES

LIFETIME_S = 600
ROUTE = "POST /api/v1/oauth/token"


class OAuthError(Exception):
    """RFC 6749 section 5.2: `error` and a description, status 400 or 401."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def parse(body: bytes) -> dict[str, str]:
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(400, "invalid_request", "the body is not application/x-www-form-urlencoded") from None
    repeated = [k for k, v in form.items() if len(v) > 1]
    if repeated:  # section 3.2: parameters must not be included more than once
        raise OAuthError(400, "invalid_request", f"repeated parameter: {repeated[0]}")
    return {k: v[0] for k, v in form.items()}


async def issue(db: Any, body: bytes, cert: str | None) -> bytes:
    """The token answer (the bytes sent, as logged), or an OAuthError."""
    form = parse(body)
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    client = form.get("client_id", "")
    if not client or len(client) > 64:
        raise OAuthError(400, "invalid_request", "client_id is required")
    scopes = sorted(set(form.get("scope", "").split()))
    if any(s not in SCOPES for s in scopes):
        raise OAuthError(400, "invalid_scope", f"scopes are among: {' '.join(SCOPES)}")
    if not cert:
        raise OAuthError(401, "invalid_client", "present the client's registered certificate in the TLS handshake")
    token = secrets.token_urlsafe(32)
    async with db.auth_transaction() as conn:
        cur = await conn.execute(
            "SELECT * FROM kntc.exchange_token_issue(%s, %s, %s, %s, %s)", (client, cert, token, scopes, LIFETIME_S)
        )
        row = await cur.fetchone()
        if row is None or row["outcome"] == "invalid_client":
            raise OAuthError(
                401, "invalid_client", "unknown client, or this certificate is not one of its valid credentials"
            )
        if row["outcome"] == "invalid_scope":
            raise OAuthError(400, "invalid_scope", f"this client may ask only for: {' '.join(row['scopes'])}")
        answer = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": LIFETIME_S,
            "scope": " ".join(row["scopes"]),
            "cnf": {"x5t#S256": certs.x5t_s256(cert)},
        }
        out = dumps(answer)
        # The answer holds a live credential: the log keeps its digest, not the answer.
        await log.record(conn, row["client_id"], ROUTE, body, 200, out, keep_out=False)
    return out


def error_body(exc: OAuthError) -> dict[str, str]:
    return {"error": exc.error, "error_description": exc.description}
