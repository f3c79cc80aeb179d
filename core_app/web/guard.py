"""Session cookies, CSRF tokens, idle timeout, per-address throttling and security headers.

The session cookie carries the API's own session token (kntc.session_open): the database still
decides who is acting and what they may see. Around it the web layer adds what a browser needs:
- CSRF: every form carries HMAC(secret_key, session token) (or, before login, HMAC of a random
  pre-session cookie); a POST without the matching token is refused.
- The idle timeout is not here: the gate (core_app.gate) applies it to the API and the pages alike,
  from the last activity the database keeps for the session.
- Throttling of failed logins and failed lookups: counters in PostgreSQL (core_app/throttle.py),
  shared by every worker of every application host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

from core_app import throttle
from core_app.gate import SESSION_COOKIE

PRE_COOKIE = "kntc_pre"
LANG_COOKIE = "kntc_lang"
RECEIPT_COOKIE = "kntc_receipt"

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def _keys(request: Request) -> tuple[bytes, ...]:
    """The secret ring (core_app.sealing): the current secret signs, every one is accepted, so that a
    key rotation does not refuse the forms already open in officers' browsers."""
    return tuple(k.encode() for k in request.app.state.settings.sealing_keys)


def sign(request: Request, purpose: str, value: str, key: bytes | None = None) -> str:
    return hmac.new(key or _keys(request)[0], f"{purpose}|{value}".encode(), hashlib.sha256).hexdigest()


def signed(request: Request, purpose: str, value: str, given: str) -> bool:
    """True when `given` is `value` signed for `purpose` by a secret of the ring."""
    return any(hmac.compare_digest(given, sign(request, purpose, value, k)) for k in _keys(request))


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None,
               path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="lax",
                        secure=is_https(request))


def pre_session(request: Request) -> str:
    """The random value anonymous forms are bound to (created on first sight)."""
    value = request.cookies.get(PRE_COOKIE) or getattr(request.state, "new_pre", None)
    if not value:
        value = secrets.token_urlsafe(24)
        request.state.new_pre = value
    return value


def csrf_token(request: Request) -> str:
    token = request.cookies.get(SESSION_COOKIE)
    if token and getattr(request.state, "actor", None) is not None:
        return sign(request, "csrf", token)
    return sign(request, "csrf-pre", pre_session(request))


def csrf_ok(request: Request, given: str | None) -> bool:
    if not given:
        return False
    token = request.cookies.get(SESSION_COOKIE)
    pre = request.cookies.get(PRE_COOKIE)
    return bool(token and signed(request, "csrf", token, given)) or bool(pre and signed(request, "csrf-pre", pre,
                                                                                           given))


def client_address(request: Request) -> str:
    """The address throttling counts against (X-Real-IP only from a trusted proxy)."""
    return throttle.client_address(request)


def security_headers(request: Request, response: Response) -> None:
    path = request.url.path
    # The Swagger UI page embeds an inline script; it keeps FastAPI's own page without this CSP.
    if path != "/docs" and not path.startswith("/static/swagger"):
        response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if is_https(request):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    new_pre = getattr(request.state, "new_pre", None)
    if new_pre and PRE_COOKIE not in request.cookies:
        set_cookie(request, response, PRE_COOKIE, new_pre)
